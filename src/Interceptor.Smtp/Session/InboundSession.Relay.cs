using System.Buffers;
using System.Globalization;
using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>The mail transaction: MAIL, RCPT and DATA relayed to the upstream one command at a time.</summary>
public sealed partial class InboundSession
{
    /// <summary>
    /// Opens the upstream before greeting the client, so an upstream that refuses us is seen by the client
    /// at the same point as with a direct connection. False when the session ends here.
    /// </summary>
    private async Task<bool> OpenUpstreamForGreetingAsync(CancellationToken token)
    {
        var refusal = await EnsureUpstreamAsync(token);
        if (refusal is null)
        {
            return true;
        }

        await WriteAsync(refusal, token);
        return false;
    }

    /// <summary>Opens (or reopens) the upstream session; null when it is ready, else the reply for the client.</summary>
    private async Task<SmtpReply?> EnsureUpstreamAsync(CancellationToken token)
    {
        try
        {
            var refusal = await _upstream.ConnectAsync(token);
            return refusal is null ? null : SessionRefused(refusal);
        }
        catch (UpstreamException e)
        {
            return Unavailable(e);
        }
    }

    private SmtpReply SessionRefused(SmtpReply refusal)
    {
        _logger.LogInformation("upstream {Upstream} refused the session for uid={Uid} user={User}: {Reply}", UpstreamName, _origin.Uid, _origin.User, refusal);
        return refusal;
    }

    private SmtpReply Unavailable(UpstreamException e)
    {
        _recorder.UpstreamFailed("connect");
        _logger.LogWarning("upstream {Upstream} unavailable for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
        return new SmtpReply(421, "4.4.1", $"upstream {UpstreamName} unavailable: {e.Message}; try again later");
    }

    private async Task MailAsync(string argument, CancellationToken token)
    {
        if (!_greeted)
        {
            await WriteAsync(SessionReplies.BadSequenceNoHelo, token);
            return;
        }

        if (_transaction is not null)
        {
            await WriteAsync(SessionReplies.BadSequenceNestedMail, token);
            return;
        }

        var (mail, refusal) = EnvelopeCommand.Parse(argument, "FROM:", allowNullPath: true);
        if (mail is null)
        {
            await WriteAsync(refusal!, token);
            return;
        }

        var declared = mail.Parameter("SIZE");
        long? declaredSize = null;
        if (declared is not null)
        {
            if (!long.TryParse(declared, NumberStyles.None, CultureInfo.InvariantCulture, out var size))
            {
                await WriteAsync(new SmtpReply(501, "5.5.4", $"Syntax: SIZE={SessionReplies.Printable(declared)} is not a number"), token);
                return;
            }

            declaredSize = size;
        }

        var (ticket, policyRefusal) = await _policy.StartMessageAsync(_origin.Uid, _origin.User, declaredSize, token);
        if (ticket is null)
        {
            await WriteAsync(policyRefusal!, token);
            return;
        }

        // The lease opens or reopens the upstream session, and repeats MAIL once on a new connection when a reused
        // session turns out closed by the upstream while idle (or at its per-connection limit, said with 421).
        UpstreamMailResult result;
        try
        {
            result = await _upstream.MailAsync(mail, token);
        }
        catch (UpstreamUnavailableException e)
        {
            await NoUpstreamForMailAsync(ticket, mail, Unavailable(e), token);
            return;
        }
        catch (UpstreamException e)
        {
            result = new UpstreamMailResult(CommandFailed(e), MailAnswer.Upstream);
        }

        if (result.RetriedAfter is { } deadReason)
        {
            _logger.LogDebug("upstream {Upstream} failed for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, deadReason);
            _logger.LogDebug("cached upstream session to {Upstream} was closed while idle; opening a new one for uid={Uid} user={User}", UpstreamName, _origin.Uid, _origin.User);
        }

        var reply = result.Reply;
        switch (result.Answer)
        {
            case MailAnswer.SessionRefused:
                await NoUpstreamForMailAsync(ticket, mail, SessionRefused(reply), token);
                return;
            case MailAnswer.Unsupported:
                await SettleUnstartedAsync(ticket, mail, null, reply, token);
                await WriteAsync(reply, token);
                return;
        }

        if (reply.IsPositive)
        {
            _transaction = new Transaction(mail, ticket);
        }
        else
        {
            await SettleUnstartedAsync(ticket, mail, reply, null, token);
        }

        await WriteAsync(reply, token);
    }

    /// <summary>No upstream session could be opened for MAIL: tallied as the upstream's refusal.</summary>
    private async Task NoUpstreamForMailAsync(MessageTicket ticket, EnvelopeCommand mail, SmtpReply upstreamRefusal, CancellationToken token)
    {
        await SettleUnstartedAsync(ticket, mail, upstreamRefusal, null, token);
        // Mid-session the client keeps its connection: the upstream's 421 becomes a transaction-level 451.
        await WriteAsync(upstreamRefusal.Code == 421 ? new SmtpReply(451, upstreamRefusal.EnhancedCode, upstreamRefusal.Lines) : upstreamRefusal, token);
    }

    /// <summary>MAIL did not start a transaction: give back the ticket, and tally it (our refusal, or the upstream's).</summary>
    private async Task SettleUnstartedAsync(MessageTicket ticket, EnvelopeCommand mail, SmtpReply? upstreamReply, SmtpReply? ourRefusal, CancellationToken token)
    {
        if (upstreamReply is null)
        {
            var refused = Event(new Transaction(mail, ticket), $"not relayed: {ourRefusal}", TransactionOutcome.Refused, UnsentKind.MailRefused);
            await _policy.FinishAsync(ticket, refused, token);
            return;
        }

        var transaction = new Transaction(mail, ticket);
        await FinishAsync(transaction, upstreamReply.ToString(), TransactionEvent.OutcomeOf(upstreamReply.Code), UnsentKind.UpstreamRefused, token);
    }

    private async Task RecipientAsync(string argument, CancellationToken token)
    {
        if (_transaction is null)
        {
            await WriteAsync(SessionReplies.BadSequenceNoMail, token);
            return;
        }

        var (recipient, refusal) = EnvelopeCommand.Parse(argument, "TO:", allowNullPath: false);
        if (recipient is null)
        {
            await WriteAsync(refusal!, token);
            return;
        }

        if (recipient.Parameters.Count > 0)
        {
            await WriteAsync(new SmtpReply(555, "5.5.4", $"RCPT parameter {SessionReplies.Printable(recipient.Parameters[0].Key)} is not supported"), token);
            return;
        }

        var quotaRefusal = await _policy.ReserveRecipientAsync(_transaction.Ticket, token);
        if (quotaRefusal is not null)
        {
            await WriteAsync(quotaRefusal, token);
            return;
        }

        var path = recipient.Path;
        var reply = await RelayAsync((upstream, t) => upstream.RcptAsync(path, t), token);
        if (reply.IsPositive)
        {
            _transaction.Recipients.Add(recipient.Address);
        }
        else
        {
            _transaction.LastRecipientRefusal = reply;
            _policy.ReleaseRecipient(_transaction.Ticket);
        }

        await WriteAsync(reply, token);
    }

    /// <summary>Runs one command upstream; a network fault becomes a 4xx for the client and ends the upstream session.</summary>
    private async Task<SmtpReply> RelayAsync(Func<UpstreamLease, CancellationToken, Task<SmtpReply>> command, CancellationToken token)
    {
        try
        {
            return await command(_upstream, token);
        }
        catch (UpstreamException e)
        {
            return CommandFailed(e);
        }
    }

    private SmtpReply CommandFailed(UpstreamException e)
    {
        _recorder.UpstreamFailed("command");
        _logger.LogWarning("upstream {Upstream} failed for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
        return new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {e.Message}; try again later");
    }

    /// <param name="unsent">How it ended, if it never reached DATA (then it is tallied, not stored one row each).</param>
    private async Task EndTransactionAsync(string reply, TransactionOutcome outcome, UnsentKind unsent, CancellationToken token)
    {
        if (_transaction is null)
        {
            return;
        }

        var transaction = _transaction;
        _transaction = null;
        await FinishAsync(transaction, reply, outcome, unsent, token);
    }

    /// <summary>Logs the transaction and settles it with the policy (quotas, the store, automatic suspension).</summary>
    private async Task FinishAsync(Transaction transaction, string reply, TransactionOutcome outcome, UnsentKind unsent, CancellationToken token)
    {
        // The upstream refusing every recipient is its verdict on the message (the usual way big providers
        // refuse spam), not a client abandoning it: count it as such for the failure-ratio suspension.
        if (outcome == TransactionOutcome.Refused && transaction.Recipients.Count == 0 && transaction.LastRecipientRefusal is { } refusal)
        {
            outcome = TransactionEvent.OutcomeOf(refusal.Code);
            reply = $"{refusal} (every recipient refused upstream)";
            unsent = UnsentKind.UpstreamRefused;
        }

        var finished = Event(transaction, reply, outcome, unsent);
        _recorder.Record(finished);
        await _policy.FinishAsync(transaction.Ticket, finished, token);
    }

    private TransactionEvent Event(Transaction transaction, string reply, TransactionOutcome outcome, UnsentKind unsent = UnsentKind.ClientLeft) =>
        new(
            transaction.Id,
            transaction.Started,
            _origin.Uid,
            _origin.User,
            transaction.Mail.Address,
            transaction.Recipients.Count,
            transaction.SizeBytes,
            UpstreamName,
            _upstream.Description,
            reply,
            transaction.Elapsed)
        {
            Outcome = outcome,
            Unsent = transaction.DataRefused ? UnsentKind.RefusedAtData : transaction.DataStarted ? null : unsent,
            Process = _origin.Process,
            SubordinateUid = _origin.SubordinateUid,
        };
}
