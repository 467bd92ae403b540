using System.Buffers;
using System.Diagnostics;
using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.IO;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Data;

/// <summary>How a DATA transfer ended: the client's reply, the transaction's outcome, and whether the session ends.</summary>
internal readonly record struct DataResult(SmtpReply Reply, TransactionOutcome Outcome, bool Close = false);

/// <summary>The size and line limits of a message, and whose they are (for the refusal).</summary>
internal sealed record DataLimits(long MaxMessageSize, int MaxDataLineBytes, string User);

/// <summary>
/// One message from our 354 to the upstream's verdict: the client's bytes through the smuggling-proof filter and the
/// message stages, to the upstream (streamed, or spooled first when a stage needs the whole message). Whatever ends the
/// transfer early, the upstream's DATA is aborted, never finished: no partial message is ever delivered.
/// </summary>
internal sealed class DataTransfer(
    LineReader client,
    SessionTimeouts timeouts,
    UpstreamLease upstream,
    string upstreamName,
    MessagePipeline pipeline,
    DataLimits limits,
    ITransactionRecorder recorder,
    ILogger logger)
{
    // The most client bytes filtered per upstream write.
    private const int DataChunk = 32 * 1024;

    private static ReadOnlySpan<byte> EndOfData => ".\r\n"u8;

    public async Task<DataResult> RunAsync(RelayTransaction transaction, ConnectionOrigin origin, CancellationToken token)
    {
        var message = new MessageContext(origin, transaction.Id, transaction.Mail.Address, transaction.Recipients) { Relay = upstream.Relay };
        try
        {
            if (pipeline.Streams)
            {
                return await TransferAsync(transaction, message, null, token);
            }

            await using var spool = await pipeline.CreateSpoolAsync(message, token);
            return await TransferAsync(transaction, message, spool, token);
        }
        catch
        {
            // A timeout or a lost client mid-DATA: QUIT would become a line of the message; dropping discards it.
            upstream.Abort();
            throw;
        }
    }

    private async Task<DataResult> TransferAsync(RelayTransaction transaction, MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        var filter = new DataStreamFilter(limits.MaxMessageSize, limits.MaxDataLineBytes);
        var guard = new HeaderSectionGuard();

        // Streamed, the headers lead the first write; spooled, they go upstream when the spool is replayed.
        var headers = spool is null ? pipeline.HeadersFor(message) : ReadOnlyMemory<byte>.Empty;

        // One buffer holds the headers, a filtered (and guarded) chunk and the end marker, so a message that arrives
        // in one read goes upstream in one write (one packet, one wake-up of the upstream) instead of three.
        var filteredSize = DataStreamFilter.OutputSizeFor(DataChunk);
        var output = ArrayPool<byte>.Shared.Rent(headers.Length + HeaderSectionGuard.OutputSizeFor(filteredSize) + EndOfData.Length);

        // While the header section lasts, the filter writes here and the guard copies into the output.
        var scratch = ArrayPool<byte>.Shared.Rent(filteredSize);
        headers.Span.CopyTo(output);
        var held = headers.Length;
        UpstreamException? upstreamFailure = null;
        var spoolFailed = false;

        // The time spent waiting for the client's bytes (not our writes upstream or to the spool): see DataTooSlow below.
        long clientWaitTicks = 0;
        timeouts.StartData();
        try
        {
            while (!filter.Completed)
            {
                var more = true;
                var waited = false;
                if (!client.HasBufferedData)
                {
                    var reading = timeouts.ReadDataAsync(client, token);
                    waited = !reading.IsCompleted;

                    // Only a read that has to wait is timed (a clock read per wait, none for bytes already there).
                    var waitStarted = waited ? Stopwatch.GetTimestamp() : 0;
                    try
                    {
                        more = await reading;
                    }
                    catch (Exception e) when (e is IOException or SessionTimeoutException { Reason: TimeoutReason.Idle }
                        && !token.IsCancellationRequested && !timeouts.Shutdown.IsCancellationRequested)
                    {
                        // A reset or silence is a hang-up too (else MAIL, RCPT, DATA and a reset would loop uncounted). Only
                        // this read: a spool or upstream error of ours, or a shutdown, must not be charged to the client,
                        // nor a read our own cancellation cut (a socket closed under it fails with an IOException too).
                        transaction.AbandonedByClient = true;
                        throw;
                    }

                    if (waited)
                    {
                        clientWaitTicks += Stopwatch.GetTimestamp() - waitStarted;
                    }
                }

                // A message streamed faster than we relay it never makes the read wait: see ThreadBudget.
                await timeouts.Budget.AfterStepAsync(waited);

                if (!more)
                {
                    // The client left mid-DATA: make sure the upstream drops the partial message.
                    upstream.Abort();
                    transaction.AbandonedByClient = true;
                    return new(new SmtpReply(451, "4.4.2", "connection closed during DATA"), TransactionOutcome.Refused, Close: true);
                }

                if (timeouts.DataTooSlow(filter.Size))
                {
                    // Counted as abandoned (MAIL, RCPT, DATA and a trickle would otherwise probe recipients uncounted) only
                    // when most of the time went into waiting for her bytes: the rate's clock also runs while we write
                    // upstream or spool, and a slow MX (or another user's load on it) must not charge an innocent client.
                    transaction.AbandonedByClient = Stopwatch.GetElapsedTime(0, clientWaitTicks) > timeouts.DataElapsed / 2;

                    // Else the time went into our writes. Into the spool's disk, they are ours: not hers, but a loop of it must
                    // not be free either (Suspension.LocalFailureLimit). Streamed, they went to the upstream, which is whatever
                    // MX the client chose: counted toward nothing, else anyone's slow MX (a web form's address at it) could
                    // hold back the site that sends to it.
                    transaction.FailedHere = !transaction.AbandonedByClient && spool is not null;
                    upstream.Abort();
                    return new(timeouts.Expire(TimeoutReason.SlowData), TransactionOutcome.Refused, Close: true);
                }

                var input = client.Buffered;
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

                client.Advance(consumed);
                held += written;

                // Streamed, the last chunk stays in the buffer to go out with the end marker.
                if ((!filter.Completed || spool is not null) && held > 0)
                {
                    if (filter.Problem == DataProblem.None && guard.Problem == DataProblem.None && upstreamFailure is null && !spoolFailed)
                    {
                        if (spool is null)
                        {
                            upstreamFailure = await TryWriteUpstreamAsync(output.AsMemory(0, held), token);
                        }
                        else
                        {
                            spoolFailed = !await TryAppendAsync(spool, output.AsMemory(0, held), message, token);
                        }
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
                return new(RefusalFor(problem), TransactionOutcome.Refused);
            }

            if (spoolFailed)
            {
                // The rest of the message was read and dropped, so the session goes on (already logged at the failed write).
                return SpoolFailure(transaction);
            }

            if (guard.Renamed > 0)
            {
                SessionLog.RenamedTraceHeaders(logger, guard.Renamed, TraceHeader.Name, transaction.Id, message.Origin.Uid, message.Origin.User);
            }

            if (upstreamFailure is null)
            {
                PipelineResult completed;
                try
                {
                    completed = await pipeline.CompleteAsync(message, spool, token);
                }
                catch (Exception e) when (spool is not null && e is IOException or UnauthorizedAccessException)
                {
                    // A stage reading the spool back (the scanner's request, DKIM's hash) hit our disk's error.
                    SessionLog.SpoolFailed(logger, transaction.Id, message.Origin.Uid, message.Origin.User, e.Message);
                    return SpoolFailure(transaction);
                }

                var (verdict, stage, added) = completed;
                transaction.StagesPassed = verdict.Decision is StageDecision.Continue or StageDecision.Hold;
                if (verdict.Decision != StageDecision.Continue)
                {
                    upstream.Abort();
                    transaction.DataRefused = verdict.Decision == StageDecision.Refuse;
                    transaction.ContentRefused = verdict.Decision == StageDecision.Refuse && verdict.Finding is not null;
                    transaction.FailedHere = verdict.Decision == StageDecision.Defer;
                    var reply = verdict.Reply!;
                    SessionLog.StageStopped(logger, stage!, transaction.Id, message.Origin.Uid, message.Origin.User, reply);
                    // Our own failure is Refused (by us, nothing relayed), not Deferred: an upstream's deferrals count toward the
                    // failure ratio, ours must not.
                    var outcome = verdict.Decision switch
                    {
                        StageDecision.Hold => TransactionOutcome.Held,
                        StageDecision.Defer => TransactionOutcome.Refused,
                        _ => TransactionEvent.OutcomeOf(reply.Code),
                    };
                    return new(reply, outcome);
                }

                if (spool is not null)
                {
                    try
                    {
                        upstreamFailure = await ReplayAsync(spool, added, pipeline.HeadersFor(message), output.AsMemory(0, DataChunk), token);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        // Reading the spool back failed mid-replay: the upstream has part of it, and the abort drops that.
                        SessionLog.SpoolFailed(logger, transaction.Id, message.Origin.Uid, message.Origin.User, e.Message);
                        return SpoolFailure(transaction);
                    }
                }
            }

            if (upstreamFailure is not null)
            {
                recorder.UpstreamFailed("data");
                upstream.Abort();
                return new(new SmtpReply(451, "4.4.2", $"upstream {upstreamName}: {upstreamFailure.Message}; the message was not delivered, try again later"), TransactionOutcome.Deferred);
            }

            EndOfData.CopyTo(output.AsSpan(held));
            return await FinishAsync(output.AsMemory(0, held + EndOfData.Length), message.Origin);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// Ours (the spool's disk, which any user may have filled), not the client's: a precise reply instead of a cut
    /// connection, the upstream's DATA aborted, and nothing of it counted against her.
    /// </summary>
    private DataResult SpoolFailure(RelayTransaction transaction)
    {
        upstream.Abort();
        transaction.FailedHere = true;
        return new(new SmtpReply(451, "4.3.0", "the message could not be kept for the checks before relaying (a local error on our side, logged); try again later"), TransactionOutcome.Refused);
    }

    /// <summary>The last bytes and the final dot, then the upstream's verdict on the message.</summary>
    private async Task<DataResult> FinishAsync(ReadOnlyMemory<byte> lastBytesAndEndOfData, ConnectionOrigin origin)
    {
        try
        {
            // Bounded by Relay.DataReplyTimeoutSeconds (inside FinishDataAsync) and the daemon's shutdown only: the
            // session timeout must not cut the wait for a verdict on a message the upstream may already have.
            var verdict = await upstream.FinishDataAsync(lastBytesAndEndOfData, timeouts.Shutdown);
            return new(verdict, TransactionEvent.OutcomeOf(verdict.Code));
        }
        catch (UpstreamException e)
        {
            recorder.UpstreamFailed("data");
            // After the final dot the outcome is unknown: a 4xx makes the client retry (a duplicate at worst, never a loss),
            // and the message is charged as sent (it may have been delivered).
            upstream.Abort();
            SessionLog.UpstreamFailedAfterEndOfData(logger, upstreamName, origin.Uid, origin.User, e.Message);
            return new(new SmtpReply(451, "4.4.2", $"upstream {upstreamName}: {e.Message} after the end of data; delivery not confirmed, try again later"), TransactionOutcome.Unknown);
        }
        catch (OperationCanceledException) when (timeouts.Shutdown.IsCancellationRequested)
        {
            // The shutdown grace ran out before the verdict came: unknown, charged as sent.
            upstream.Abort();
            SessionLog.NoVerdictBeforeShutdown(logger, upstreamName, origin.Uid, origin.User);
            return new(new SmtpReply(451, "4.4.2", $"upstream {upstreamName}: the service is shutting down; delivery not confirmed, try again later"), TransactionOutcome.Unknown);
        }
    }

    /// <summary>Sends a spooled message upstream after every stage let it go: the headers stages added on completion (a
    /// signature), the stages' own headers, then the spool.</summary>
    private async Task<UpstreamException?> ReplayAsync(IMessageSpool spool, ReadOnlyMemory<byte> added, ReadOnlyMemory<byte> headers, Memory<byte> buffer, CancellationToken token)
    {
        var failure = added.Length > 0 ? await TryWriteUpstreamAsync(added, token) : null;
        failure ??= headers.Length > 0 ? await TryWriteUpstreamAsync(headers, token) : null;
        await using var stream = spool.OpenRead();
        int read;
        while (failure is null && (read = await stream.ReadAsync(buffer, token)) > 0)
        {
            failure = await TryWriteUpstreamAsync(buffer[..read], token);

            // A spool replayed to a fast upstream never waits (the file is in the page cache): see ThreadBudget.
            await timeouts.Budget.AfterStepAsync(waited: false);
        }

        return failure;
    }

    private async Task<UpstreamException?> TryWriteUpstreamAsync(ReadOnlyMemory<byte> data, CancellationToken token)
    {
        try
        {
            await upstream.WriteDataAsync(data, token);
            return null;
        }
        catch (UpstreamException e)
        {
            return e;
        }
    }

    /// <summary>False when the spool could not keep the bytes (logged at once, naming the user: the client may never see the end).</summary>
    private async Task<bool> TryAppendAsync(IMessageSpool spool, ReadOnlyMemory<byte> data, MessageContext message, CancellationToken token)
    {
        try
        {
            await spool.AppendAsync(data, token);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            SessionLog.SpoolFailed(logger, message.TransactionId, message.Origin.Uid, message.Origin.User, e.Message);
            return false;
        }
    }

    private SmtpReply RefusalFor(DataProblem problem) => problem switch
    {
        DataProblem.TooBig => new SmtpReply(552, "5.3.4", $"Error: message exceeds the size limit of {limits.MaxMessageSize} bytes for user {limits.User}; nothing was relayed"),
        DataProblem.LineTooLong => SessionReplies.DataLineTooLong(limits.MaxDataLineBytes),
        DataProblem.BareCarriageReturn => SessionReplies.DataHasForbiddenBytes("a bare <CR> (RFC 5321 2.3.8)"),
        DataProblem.NulByte => SessionReplies.DataHasForbiddenBytes("a NUL byte"),
        DataProblem.FoldsIntoTraceHeader => SessionReplies.DataFoldsIntoTraceHeader,
        _ => throw new ArgumentOutOfRangeException(nameof(problem), problem, null),
    };
}
