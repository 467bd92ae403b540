using System.Buffers;
using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>DATA: recorded as pending, then streamed upstream through the smuggling-proof filter.</summary>
public sealed partial class InboundSession
{
    // The most client bytes filtered per upstream write.
    private const int DataChunk = 32 * 1024;

    private static ReadOnlySpan<byte> EndOfData => ".\r\n"u8;
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

        if (ClientSentEarly())
        {
            // RFC 2920: DATA ends a pipelined group; message bytes before our 354 are a protocol violation
            // (and the classic way to smuggle). Refuse and close, as Postfix does.
            await ResetUpstreamAsync(token);
            await EndTransactionAsync("refused: improper command pipelining after DATA", TransactionOutcome.Refused, UnsentKind.RefusedAtData, token);
            await WriteAsync(new SmtpReply(554, "5.5.0", "Error: improper command pipelining after DATA"), token);
            _closing = true;
            return;
        }

        // Fail closed: the transaction is on disk before a byte of it goes upstream.
        if (_transaction.Ticket is { } ticket)
        {
            var storeRefusal = await _policy!.BeginDataAsync(ticket, Event(_transaction, "pending", TransactionOutcome.Pending), token);
            if (storeRefusal is not null)
            {
                await ResetUpstreamAsync(token);
                await EndTransactionAsync("not relayed: " + storeRefusal, TransactionOutcome.Refused, UnsentKind.RefusedAtData, token);
                await WriteAsync(storeRefusal, token);
                return;
            }
        }

        _transaction.DataStarted = true;

        var go = await RelayAsync("DATA", token);
        if (go.Code != 354)
        {
            // Some upstreams keep their transaction after refusing DATA; reset it so the next MAIL is not "nested".
            await ResetUpstreamAsync(token);
            await EndTransactionAsync(go.ToString(), TransactionEvent.OutcomeOf(go.Code), UnsentKind.UpstreamRefused, token);
            await WriteAsync(go, token);
            return;
        }

        await WriteAsync(go, token);
        SmtpReply final;
        TransactionOutcome outcome;
        _relayingData = true;

        // Cleared only when the transfer ended normally: on a timeout or a lost client the flag stays set,
        // so the session's cleanup drops the upstream instead of writing QUIT into the open DATA.
        (final, outcome) = await TransferDataAsync(_transaction, token);
        _relayingData = false;

        // Once the final dot went out the verdict is accounted and passed on even if the session timed out meanwhile
        // (the next read then ends the session): a delivered message must never be recorded as aborted.
        await EndTransactionAsync(final.ToString(), outcome, UnsentKind.ClientLeft, CancellationToken.None);
        if (_shutdown.IsCancellationRequested)
        {
            await TryWriteAsync(final);
            _closing = true;
            return;
        }

        await WriteAsync(final, token.IsCancellationRequested ? _shutdown : token);
    }

    /// <summary>
    /// Streams the message to the upstream through the smuggling-proof filter and returns the reply the client
    /// gets: the upstream's verdict, or our refusal when the message or the upstream failed.
    /// </summary>
    private async Task<(SmtpReply Reply, TransactionOutcome Outcome)> TransferDataAsync(Transaction transaction, CancellationToken token)
    {
        var upstream = _upstream!;
        var filter = new DataStreamFilter(MaxMessageSize, _options.Smtp.MaxDataLine.ToInt32());
        var guard = new HeaderSectionGuard();
        var header = TraceHeader.Render(_origin, _options.Relay.HeloName, transaction.Id, _options.Trace.IncludeProcess);

        // One buffer holds the trace header, a filtered (and guarded) chunk and the end marker, so a message that arrives
        // in one read goes upstream in one write (one packet, one wake-up of the upstream) instead of three.
        var filteredSize = DataStreamFilter.OutputSizeFor(DataChunk);
        var output = ArrayPool<byte>.Shared.Rent(header.Length + HeaderSectionGuard.OutputSizeFor(filteredSize) + EndOfData.Length);

        // While the header section lasts, the filter writes here and the guard copies into the output.
        var scratch = ArrayPool<byte>.Shared.Rent(filteredSize);
        header.CopyTo(output, 0);
        var held = header.Length;
        UpstreamException? upstreamFailure = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var minimumRate = _options.Smtp.MinDataRate.BytesPerSecond;
        try
        {
            while (!filter.Completed)
            {
                if (!_reader.HasBufferedData && !await _reader.FillAsync(_idle, token))
                {
                    // The client left mid-DATA: make sure the upstream drops the partial message.
                    upstream.Abort();
                    _closing = true;
                    return (new SmtpReply(451, "4.4.2", "connection closed during DATA"), TransactionOutcome.Refused);
                }

                // A trickle keeps an upstream session and our memory busy: after a grace period, demand a minimum rate.
                if (minimumRate > 0 && clock.Elapsed > _options.Smtp.DataRateGrace && filter.Size < minimumRate * clock.Elapsed.TotalSeconds)
                {
                    upstream.Abort();
                    _closing = true;
                    _logger.LogInformation("closing session uid={Uid} user={User}: DATA slower than {Rate} bytes/s", _origin.Uid, _origin.User, minimumRate);
                    return (new SmtpReply(421, "4.4.2", $"Error: data arrives slower than {minimumRate} bytes/s; closing connection"), TransactionOutcome.Refused);
                }

                var input = _reader.Buffered;
                if (input.Length > DataChunk)
                {
                    input = input[..DataChunk];
                }

                int consumed, written;
                if (guard.HeaderSectionEnded)
                {
                    (consumed, written) = filter.Process(input, output.AsSpan(held));
                }
                else
                {
                    (consumed, var filtered) = filter.Process(input, scratch);
                    written = guard.Process(scratch.AsSpan(0, filtered), output.AsSpan(held));
                }

                _reader.Advance(consumed);
                held += written;

                // The last chunk stays in the buffer to go out with the end marker.
                if (!filter.Completed && held > 0)
                {
                    if (filter.Problem == DataProblem.None && guard.Problem == DataProblem.None && upstreamFailure is null)
                    {
                        upstreamFailure = await TryWriteUpstreamAsync(upstream, output.AsMemory(0, held), token);
                    }

                    held = 0;
                }
            }

            transaction.SizeBytes = filter.Size;
            var problem = filter.Problem != DataProblem.None ? filter.Problem : guard.Problem;
            if (problem != DataProblem.None)
            {
                // Never finish the upstream's DATA: dropping the connection makes it discard what it got.
                transaction.DataRefused = true;
                upstream.Abort();
                return (RefusalFor(problem), TransactionOutcome.Refused);
            }

            if (guard.Renamed > 0)
            {
                _logger.LogInformation("renamed {Count} client-supplied {Header} header(s) to X-Interceptor-Client-Origin in message {Id} of uid={Uid} user={User}",
                    guard.Renamed, TraceHeader.Name, transaction.Id, _origin.Uid, _origin.User);
            }

            if (upstreamFailure is not null)
            {
                _recorder.UpstreamFailed("data");
                upstream.Abort();
                return (new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {upstreamFailure.Message}; the message was not delivered, try again later"), TransactionOutcome.Deferred);
            }

            EndOfData.CopyTo(output.AsSpan(held));
            try
            {
                // Bounded by Relay.DataReplyTimeoutSeconds (inside FinishDataAsync) and the daemon's shutdown only: the
                // session timeout must not cut the wait for a verdict on a message the upstream may already have.
                var verdict = await upstream.FinishDataAsync(output.AsMemory(0, held + EndOfData.Length), _shutdown);
                return (verdict, TransactionEvent.OutcomeOf(verdict.Code));
            }
            catch (UpstreamException e)
            {
                _recorder.UpstreamFailed("data");
                // After the final dot the outcome is unknown: a 4xx makes the client retry (a duplicate at worst, never a loss),
                // and the message is charged as sent (it may have been delivered).
                upstream.Abort();
                _logger.LogWarning("upstream {Upstream} failed after the end of data for uid={Uid} user={User}: {Reason}", UpstreamName, _origin.Uid, _origin.User, e.Message);
                return (new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: {e.Message} after the end of data; delivery not confirmed, try again later"), TransactionOutcome.Unknown);
            }
            catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
            {
                // The shutdown grace ran out before the verdict came: unknown, charged as sent.
                upstream.Abort();
                _logger.LogWarning("no verdict from upstream {Upstream} for uid={Uid} user={User} before shutdown: recorded as unknown, counted as sent", UpstreamName, _origin.Uid, _origin.User);
                return (new SmtpReply(451, "4.4.2", $"upstream {UpstreamName}: the service is shutting down; delivery not confirmed, try again later"), TransactionOutcome.Unknown);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
            ArrayPool<byte>.Shared.Return(scratch);
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
        DataProblem.LineTooLong => SessionReplies.DataLineTooLong(_options.Smtp.MaxDataLine.ToInt32()),
        DataProblem.BareCarriageReturn => SessionReplies.DataHasForbiddenBytes("a bare <CR> (RFC 5321 2.3.8)"),
        DataProblem.NulByte => SessionReplies.DataHasForbiddenBytes("a NUL byte"),
        DataProblem.FoldsIntoTraceHeader => SessionReplies.DataFoldsIntoTraceHeader,
        _ => throw new ArgumentOutOfRangeException(nameof(problem), problem, null),
    };
}
