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
        if (_upstream is { IsUsable: true })
        {
            return null;
        }

        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
            _upstream = null;
        }

        try
        {
            var (connection, refusal) = _upstreams is null
                ? await UpstreamConnection.OpenAsync(_origin.OriginalDestination, _upstreamSettings, token)
                : await _upstreams.OpenAsync(_origin.OriginalDestination, token);
            if (connection is null)
            {
                _logger.LogInformation("upstream {Upstream} refused the session for uid={Uid} user={User}: {Reply}", UpstreamName, _origin.Uid, _origin.User, refusal);
                return refusal;
            }

            _upstream = connection;
            _upstreamCapabilities = connection.Capabilities;
            return null;
        }
        catch (UpstreamException e)
        {
            _recorder.UpstreamFailed("connect");
            _logger.LogWarning("upstream {Upstream} unavailable for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
            return new SmtpReply(421, "4.4.1", $"upstream {UpstreamName} unavailable: {e.Message}; try again later");
        }
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

        // Without a policy (tests of the protocol alone) the static size limit is checked here.
        if (_policy is null && declaredSize > MaxMessageSize)
        {
            await WriteAsync(new SmtpReply(552, "5.3.4", $"message size {declaredSize} exceeds the limit of {MaxMessageSize} bytes for user {_origin.User}"), token);
            return;
        }

        MessageTicket? ticket = null;
        if (_policy is not null)
        {
            var (granted, policyRefusal) = await _policy.StartMessageAsync(_origin.Uid, _origin.User, declaredSize, token);
            if (granted is null)
            {
                await WriteAsync(policyRefusal!, token);
                return;
            }

            ticket = granted;
        }

        SmtpReply reply;
        for (var attempt = 1; ; attempt++)
        {
            var upstreamRefusal = await EnsureUpstreamAsync(token);
            if (upstreamRefusal is not null)
            {
                await SettleUnstartedAsync(ticket, mail, upstreamRefusal, null, token);
                // Mid-session the client keeps its connection: the upstream's 421 becomes a transaction-level 451.
                await WriteAsync(upstreamRefusal.Code == 421 ? new SmtpReply(451, upstreamRefusal.EnhancedCode, upstreamRefusal.Lines) : upstreamRefusal, token);
                return;
            }

            var (line, parameterRefusal) = BuildUpstreamMail(mail);
            if (parameterRefusal is not null)
            {
                await SettleUnstartedAsync(ticket, mail, null, parameterRefusal, token);
                await WriteAsync(parameterRefusal, token);
                return;
            }

            // A session taken from the cache may have been closed by the upstream while idle (or have reached its
            // per-connection limit, which it says with 421). MAIL has started nothing yet: repeat it once on a new one.
            var unproven = _upstream!.UnprovenSinceCached;
            reply = await RelayAsync(line!, token, quietly: unproven);
            if (!unproven || _upstream.IsUsable || attempt > 1)
            {
                break;
            }

            _logger.LogDebug("cached upstream session to {Upstream} was closed while idle; opening a new one for uid={Uid} user={User}", UpstreamName, _origin.Uid, _origin.User);
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

    /// <summary>MAIL did not start a transaction: give back the ticket, and tally it (our refusal, or the upstream's).</summary>
    private async Task SettleUnstartedAsync(MessageTicket? ticket, EnvelopeCommand mail, SmtpReply? upstreamReply, SmtpReply? ourRefusal, CancellationToken token)
    {
        if (upstreamReply is null)
        {
            if (ticket is not null)
            {
                var refused = Event(new Transaction(mail, ticket), $"not relayed: {ourRefusal}", TransactionOutcome.Refused, UnsentKind.MailRefused);
                await _policy!.FinishAsync(ticket, refused, token);
            }

            return;
        }

        var transaction = new Transaction(mail, ticket);
        await FinishAsync(transaction, upstreamReply.ToString(), TransactionEvent.OutcomeOf(upstreamReply.Code), UnsentKind.UpstreamRefused, token);
    }

    /// <summary>Passes on the parameters the upstream understands; refuses those it cannot honour.</summary>
    private (string? Line, SmtpReply? Refusal) BuildUpstreamMail(EnvelopeCommand mail)
    {
        var capabilities = _upstream!.Capabilities;
        var line = new System.Text.StringBuilder("MAIL FROM:").Append(mail.Path);
        foreach (var (keyword, value) in mail.Parameters)
        {
            switch (keyword)
            {
                case "SIZE":
                    if (capabilities.Size)
                    {
                        line.Append(" SIZE=").Append(value);
                    }

                    break;
                case "BODY" when string.Equals(value, "8BITMIME", StringComparison.OrdinalIgnoreCase):
                    if (!capabilities.EightBitMime)
                    {
                        return (null, new SmtpReply(554, "5.6.3", $"upstream {UpstreamName} does not support 8BITMIME; send the message 7-bit encoded"));
                    }

                    line.Append(" BODY=8BITMIME");
                    break;
                case "BODY" when string.Equals(value, "7BIT", StringComparison.OrdinalIgnoreCase):
                    if (capabilities.EightBitMime)
                    {
                        line.Append(" BODY=7BIT");
                    }

                    break;
                case "SMTPUTF8" when value is null:
                    if (!capabilities.SmtpUtf8)
                    {
                        return (null, new SmtpReply(553, "5.6.7", $"upstream {UpstreamName} does not support SMTPUTF8; use an ASCII address"));
                    }

                    line.Append(" SMTPUTF8");
                    break;
                default:
                    return (null, new SmtpReply(555, "5.5.4", $"MAIL parameter {SessionReplies.Printable(keyword)} is not supported"));
            }
        }

        return (line.ToString(), null);
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

        if (_policy is null && _transaction.Recipients.Count >= MaxRecipients)
        {
            await WriteAsync(QuotaReplies.For(new QuotaExceeded(RefusalKind.RecipientsPerMessage, _transaction.Recipients.Count, MaxRecipients), _origin.User), token);
            return;
        }

        if (_transaction.Ticket is { } ticket)
        {
            var quotaRefusal = await _policy!.ReserveRecipientAsync(ticket, token);
            if (quotaRefusal is not null)
            {
                await WriteAsync(quotaRefusal, token);
                return;
            }
        }

        var reply = await RelayAsync($"RCPT TO:{recipient.Path}", token);
        if (reply.IsPositive)
        {
            _transaction.Recipients.Add(recipient.Address);
        }
        else
        {
            _transaction.LastRecipientRefusal = reply;
            if (_transaction.Ticket is { } refused)
            {
                _policy!.ReleaseRecipient(refused);
            }
        }

        await WriteAsync(reply, token);
    }

    /// <summary>Sends one command upstream; a network fault becomes a 4xx for the client and ends the upstream session.</summary>
    private async Task<SmtpReply> RelayAsync(string command, CancellationToken token, bool quietly = false)
    {
        try
        {
            return await _upstream!.SendAsync(command, token);
        }
        catch (UpstreamException e)
        {
            if (!quietly)
            {
                _recorder.UpstreamFailed("command");
            }

            _logger.Log(quietly ? LogLevel.Debug : LogLevel.Warning, "upstream {Upstream} failed for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
            return new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {e.Message}; try again later");
        }
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
        if (transaction.Ticket is not null)
        {
            await _policy!.FinishAsync(transaction.Ticket, finished, token);
        }
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
            _upstream is null ? UpstreamName : UpstreamConnection.Format(_upstream.Endpoint) + (_upstream.IsTls ? " (TLS)" : ""),
            reply,
            transaction.Elapsed)
        {
            Outcome = outcome,
            Unsent = transaction.DataRefused ? UnsentKind.RefusedAtData : transaction.DataStarted ? null : unsent,
            Process = _origin.Process,
            SubordinateUid = _origin.SubordinateUid,
        };
}
