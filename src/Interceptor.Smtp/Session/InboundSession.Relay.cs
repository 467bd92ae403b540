using System.Buffers;
using System.Globalization;
using Interceptor.Core.Events;
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
            var (connection, refusal) = await UpstreamConnection.OpenAsync(_origin.OriginalDestination, _upstreamSettings, token);
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
        if (declared is not null && (!long.TryParse(declared, NumberStyles.None, CultureInfo.InvariantCulture, out var size) || size > MaxMessageSize))
        {
            await WriteAsync(new SmtpReply(552, "5.3.4", $"Error: message size {SessionReplies.Printable(declared)} exceeds the limit of {MaxMessageSize} bytes for user {_origin.User}"), token);
            return;
        }

        var upstreamRefusal = await EnsureUpstreamAsync(token);
        if (upstreamRefusal is not null)
        {
            // Mid-session the client keeps its connection: the upstream's 421 becomes a transaction-level 451.
            await WriteAsync(upstreamRefusal.Code == 421 ? new SmtpReply(451, upstreamRefusal.EnhancedCode, upstreamRefusal.Lines) : upstreamRefusal, token);
            return;
        }

        var (line, parameterRefusal) = BuildUpstreamMail(mail);
        if (parameterRefusal is not null)
        {
            await WriteAsync(parameterRefusal, token);
            return;
        }

        var reply = await RelayAsync(line!, token);
        if (reply.IsPositive)
        {
            _transaction = new Transaction(mail);
        }
        else
        {
            Record(new Transaction(mail), reply.ToString());
        }

        await WriteAsync(reply, token);
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

        if (_transaction.Recipients.Count >= MaxRecipients)
        {
            await WriteAsync(SessionReplies.TooManyRecipients(MaxRecipients), token);
            return;
        }

        var reply = await RelayAsync($"RCPT TO:{recipient.Path}", token);
        if (reply.IsPositive)
        {
            _transaction.Recipients.Add(recipient.Address);
        }

        await WriteAsync(reply, token);
    }

    /// <summary>Sends one command upstream; a network fault becomes a 4xx for the client and ends the upstream session.</summary>
    private async Task<SmtpReply> RelayAsync(string command, CancellationToken token)
    {
        try
        {
            return await _upstream!.SendAsync(command, token);
        }
        catch (UpstreamException e)
        {
            _logger.LogWarning("upstream {Upstream} failed for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
            return new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {e.Message}; try again later");
        }
    }

    private async Task DataAsync(string argument, CancellationToken token)
    {
        if (_transaction is null)
        {
            await WriteAsync(SessionReplies.BadSequenceNoMail, token);
            return;
        }

        if (argument.Length > 0)
        {
            await WriteAsync(new SmtpReply(501, "5.5.4", "Syntax: DATA (no argument)"), token);
            return;
        }

        if (_transaction.Recipients.Count == 0)
        {
            await WriteAsync(SessionReplies.NoValidRecipients, token);
            return;
        }

        var go = await RelayAsync("DATA", token);
        if (go.Code != 354)
        {
            EndTransaction(go.ToString());
            await WriteAsync(go, token);
            return;
        }

        await WriteAsync(go, token);
        var final = await TransferDataAsync(_transaction, token);
        EndTransaction(final.ToString());
        await WriteAsync(final, token);
    }

    /// <summary>
    /// Streams the message to the upstream through the smuggling-proof filter and returns the reply the client
    /// gets: the upstream's verdict, or our refusal when the message or the upstream failed.
    /// </summary>
    private async Task<SmtpReply> TransferDataAsync(Transaction transaction, CancellationToken token)
    {
        var upstream = _upstream!;
        var filter = new DataStreamFilter(MaxMessageSize, _options.Smtp.MaxDataLineBytes);
        var output = ArrayPool<byte>.Shared.Rent(DataStreamFilter.OutputSizeFor(32 * 1024));
        UpstreamException? upstreamFailure = null;
        try
        {
            var header = TraceHeader.Render(_origin, _options.Relay.HeloName, transaction.Id);
            upstreamFailure = await TryWriteUpstreamAsync(upstream, header, token);
            while (!filter.Completed)
            {
                if (!_reader.HasBufferedData && !await _reader.FillAsync(_idle, token))
                {
                    // The client left mid-DATA: make sure the upstream drops the partial message.
                    upstream.Abort();
                    _closing = true;
                    return new SmtpReply(451, "4.4.2", "connection closed during DATA");
                }

                var input = _reader.Buffered;
                if (input.Length > 32 * 1024)
                {
                    input = input[..(32 * 1024)];
                }

                var (consumed, written) = filter.Process(input, output);
                _reader.Advance(consumed);
                if (filter.Problem == DataProblem.None && upstreamFailure is null && written > 0)
                {
                    upstreamFailure = await TryWriteUpstreamAsync(upstream, output.AsMemory(0, written), token);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
        }

        transaction.SizeBytes = filter.Size;
        if (filter.Problem != DataProblem.None)
        {
            // Never finish the upstream's DATA: dropping the connection makes it discard what it got.
            upstream.Abort();
            return RefusalFor(filter.Problem);
        }

        if (upstreamFailure is not null)
        {
            upstream.Abort();
            return new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {upstreamFailure.Message}; the message was not delivered, try again later");
        }

        try
        {
            return await upstream.FinishDataAsync(token);
        }
        catch (UpstreamException e)
        {
            // After the final dot the outcome is unknown: a 4xx makes the client retry (a duplicate at worst, never a loss).
            upstream.Abort();
            _logger.LogWarning("upstream {Upstream} failed after the end of data for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
            return new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {e.Message} after the end of data; delivery not confirmed, try again later");
        }
    }

    private static async Task<UpstreamException?> TryWriteUpstreamAsync(UpstreamConnection upstream, ReadOnlyMemory<byte> data, CancellationToken token)
    {
        try
        {
            await upstream.WriteAsync(data, token);
            return null;
        }
        catch (UpstreamException e)
        {
            return e;
        }
    }

    private SmtpReply RefusalFor(DataProblem problem) => problem switch
    {
        DataProblem.TooBig => new SmtpReply(552, "5.3.4", $"Error: message exceeds the size limit of {MaxMessageSize} bytes for user {_origin.User}; nothing was relayed"),
        DataProblem.LineTooLong => SessionReplies.DataLineTooLong(_options.Smtp.MaxDataLineBytes),
        DataProblem.BareCarriageReturn => SessionReplies.DataHasForbiddenBytes("a bare <CR> (RFC 5321 2.3.8)"),
        DataProblem.NulByte => SessionReplies.DataHasForbiddenBytes("a NUL byte"),
        _ => throw new ArgumentOutOfRangeException(nameof(problem), problem, null),
    };

    private void EndTransaction(string reply)
    {
        if (_transaction is null)
        {
            return;
        }

        Record(_transaction, reply);
        _transaction = null;
    }

    private void Record(Transaction transaction, string reply)
    {
        _recorder.Record(new TransactionEvent(
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
            transaction.Elapsed));
    }
}
