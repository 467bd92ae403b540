using System.Globalization;
using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Smtp.Session;

/// <summary>
/// The commands that build (or drop) the envelope: EHLO/HELO, MAIL, RCPT and RSET, each relayed to the upstream in
/// lock-step. Legality is the state table's; these only do the command's work and say whether it took effect.
/// </summary>
internal sealed class EnvelopeCommands(SessionContext context)
{
    private ClientChannel Client => context.Client;

    private UpstreamLink Upstream => context.Upstream;

    public async Task<StepResult> HelloAsync(CommandLine command, RelayTransaction? transaction, CancellationToken token)
    {
        if (command.Argument.Length == 0)
        {
            await Client.WriteAsync(SessionReplies.HeloNeedsArgument, token);
            return StepResult.Failure;
        }

        // RFC 5321 4.1.4: EHLO/HELO in a transaction resets it.
        if (transaction is not null)
        {
            await Upstream.ResetAsync(token);
            await transaction.FinishAsync("aborted: the client said HELO again", TransactionOutcome.Refused, UnsentKind.Reset, token);
            Client.CountError();
        }

        if (Client.SentEarly)
        {
            // RFC 2920: EHLO ends a pipelined group. Commands sent before its reply are spamware's hallmark
            // (Postfix: smtpd_forbid_unauth_pipelining). Refuse and hang up.
            await Client.WriteAsync(SessionReplies.ImproperPipelining(command.Verb), token);
            return StepResult.Closed;
        }

        var hostName = context.Options.Relay.HeloName;
        if (command.Verb == "HELO")
        {
            await Client.WriteAsync(new SmtpReply(250, null, hostName), token);
            return StepResult.Success;
        }

        // Advertise what we can honour: what the upstream supports, bounded by this user's limits.
        var capabilities = Upstream.Capabilities;
        var size = capabilities.MaxSize is { } upstreamMax ? Math.Min(upstreamMax, context.MaxMessageSize) : context.MaxMessageSize;
        var lines = new List<string> { hostName, "PIPELINING", $"SIZE {size}" };
        if (capabilities.EightBitMime)
        {
            lines.Add("8BITMIME");
        }

        if (capabilities.SmtpUtf8)
        {
            lines.Add("SMTPUTF8");
        }

        if (context.Tls is not null && !Client.IsSecure)
        {
            lines.Add("STARTTLS");
        }

        lines.Add("ENHANCEDSTATUSCODES");
        await Client.WriteAsync(new SmtpReply(250, null, lines), token);
        return StepResult.Success;
    }

    /// <summary>MAIL: checked, granted a ticket by the policy, relayed. The transaction when the upstream accepted it.</summary>
    public async Task<(StepResult Result, RelayTransaction? Transaction)> MailAsync(string argument, CancellationToken token)
    {
        var (mail, refusal) = EnvelopeCommand.Parse(argument, "FROM:", allowNullPath: true);
        if (mail is null)
        {
            await Client.WriteAsync(refusal!, token);
            return (StepResult.Failure, null);
        }

        var declared = mail.Parameter("SIZE");
        long? declaredSize = null;
        if (declared is not null)
        {
            if (!long.TryParse(declared, NumberStyles.None, CultureInfo.InvariantCulture, out var size))
            {
                await Client.WriteAsync(new SmtpReply(501, "5.5.4", $"Syntax: SIZE={SessionReplies.Printable(declared)} is not a number"), token);
                return (StepResult.Failure, null);
            }

            declaredSize = size;
        }

        var (ticket, policyRefusal) = await context.Policy.StartMessageAsync(context.Origin.Uid, context.Origin.User, declaredSize, token);
        if (ticket is null)
        {
            await Client.WriteAsync(policyRefusal!, token);
            return (StepResult.Failure, null);
        }

        // From here every ending is a finished transaction: stored, logged and counted.
        var transaction = new RelayTransaction(mail, ticket, context.Sink);
        try
        {
            var (how, reply) = await Upstream.MailAsync(mail, token);
            switch (how)
            {
                case MailRelayed.Answered when reply.IsPositive:
                    await Client.WriteAsync(reply, token);
                    return (StepResult.Success, transaction);
                case MailRelayed.ParameterRefused:
                    await transaction.FinishAsync($"not relayed: {reply}", TransactionOutcome.Refused, UnsentKind.MailRefused, token);
                    await Client.WriteAsync(reply, token);
                    return (StepResult.Failure, null);
                default:
                    await transaction.FinishAsync(reply.ToString(), TransactionEvent.OutcomeOf(reply.Code), UnsentKind.UpstreamRefused, token);

                    // Mid-session the client keeps its connection: an upstream's 421 at (re)connection becomes a transaction-level 451.
                    var forClient = how == MailRelayed.Unavailable && reply.Code == 421 ? new SmtpReply(451, reply.EnhancedCode, reply.Lines) : reply;
                    await Client.WriteAsync(forClient, token);
                    return (StepResult.Failure, null);
            }
        }
        catch
        {
            // Before the session holds the transaction (cancelled while the upstream answered MAIL, the client gone before
            // our reply): finished here, else its quota reservation, and a trial's turn at the breaker, stayed taken.
            await transaction.FinishAsync("aborted: the session ended at MAIL", TransactionOutcome.Refused, UnsentKind.ClientLeft, CancellationToken.None);
            throw;
        }
    }

    public async Task<StepResult> RecipientAsync(string argument, RelayTransaction transaction, CancellationToken token)
    {
        var (recipient, refusal) = EnvelopeCommand.Parse(argument, "TO:", allowNullPath: false);
        if (recipient is null)
        {
            await Client.WriteAsync(refusal!, token);
            return StepResult.Failure;
        }

        if (recipient.Parameters.Count > 0)
        {
            await Client.WriteAsync(new SmtpReply(555, "5.5.4", $"RCPT parameter {SessionReplies.Printable(recipient.Parameters[0].Key)} is not supported"), token);
            return StepResult.Failure;
        }

        if (await context.Policy.ReserveRecipientAsync(transaction.Ticket, token) is { } quotaRefusal)
        {
            await Client.WriteAsync(quotaRefusal, token);
            return StepResult.Failure;
        }

        var reply = await Upstream.RcptAsync(recipient.Path, token);
        transaction.RecipientAnswered(recipient.Address, reply);
        await Client.WriteAsync(reply, token);
        return StepResult.Of(reply);
    }

    /// <summary>RSET reaches the upstream whenever a session is open, with or without our transaction:
    /// an upstream may keep its own transaction open after refusing DATA (Postfix does).</summary>
    public async Task<StepResult> ResetAsync(RelayTransaction? transaction, CancellationToken token)
    {
        var reply = await Upstream.ResetAsync(token);
        if (transaction is not null)
        {
            if (!transaction.DataStarted)
            {
                // A transaction dropped before DATA relayed nothing: MAIL+RSET loops are an error storm (the session's error
                // limits), never a way to keep an upstream session and the accounting busy for free.
                Client.CountError();
            }

            await transaction.FinishAsync("aborted: RSET", TransactionOutcome.Refused, UnsentKind.Reset, token);
        }

        await Client.WriteAsync(reply ?? SessionReplies.Ok, token);
        return StepResult.Success;
    }
}
