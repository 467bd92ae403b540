using Interceptor.Core.Events;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Protocol;

namespace Interceptor.Smtp.Session;

/// <summary>
/// DATA: the pending record (fail closed), the upstream's 354, the transfer through the message stages, and the
/// upstream's verdict passed on. It always ends the transaction, except for a syntax error.
/// </summary>
internal sealed class DataCommand(SessionContext context)
{
    private ClientChannel Client => context.Client;

    /// <summary>DATA takes no argument; judged before anything else about DATA once a transaction is open.</summary>
    public static SmtpReply? SyntaxError(string argument) => argument.Length > 0 ? SessionReplies.DataTakesNoArgument : null;

    /// <param name="streaming">Called once the client has its 354: from then on its lines are message content.</param>
    public async Task<StepResult> RunAsync(string argument, RelayTransaction transaction, Action streaming, CancellationToken token)
    {
        if (SyntaxError(argument) is { } syntax)
        {
            await Client.WriteAsync(syntax, token);
            return StepResult.Failure;
        }

        if (Client.SentEarly)
        {
            // RFC 2920: DATA ends a pipelined group; message bytes before our 354 are a protocol violation
            // (and the classic way to smuggle). Refuse and close, as Postfix does.
            await context.Upstream.ResetAsync(token);
            await transaction.FinishAsync("refused: improper command pipelining after DATA", TransactionOutcome.Refused, UnsentKind.RefusedAtData, token);
            await Client.WriteAsync(SessionReplies.ImproperPipelining("DATA"), token);
            return StepResult.Closed;
        }

        // The pending row first. When it could not be committed at once (other writes queued: under load), the upstream's
        // DATA goes out while it commits, so the row's trip through the store's writer hides behind that round trip. The
        // message itself waits for both: not a byte of it goes upstream before its row is on disk.
        var pending = transaction.BeginDataAsync(token);
        SmtpReply? go = null;
        if (!pending.IsCompleted)
        {
            go = await DataAlongsideAsync(pending, token);
        }

        if (await pending is { } storeRefusal)
        {
            if (go is { Code: 354 })
            {
                // The upstream waits for a message that will not come: dropped, it discards the transaction.
                context.Upstream.Lease.Abort();
            }
            else
            {
                await context.Upstream.ResetAsync(token);
            }

            // Ours, not hers: any user may have filled the store's disk. Counted toward nothing but the breaker at MAIL.
            transaction.FailedHere = true;
            await transaction.FinishAsync("not relayed: " + storeRefusal, TransactionOutcome.Refused, UnsentKind.RefusedAtData, token);
            await Client.WriteAsync(storeRefusal, token);
            return StepResult.Success;
        }

        go ??= await context.Upstream.DataAsync(token);
        if (go.Code != 354)
        {
            // Some upstreams keep their transaction after refusing DATA; reset it so the next MAIL is not "nested".
            await context.Upstream.ResetAsync(token);
            await transaction.FinishAsync(go.ToString(), TransactionEvent.OutcomeOf(go.Code), UnsentKind.UpstreamRefused, token);
            await Client.WriteAsync(go, token);
            return StepResult.Success;
        }

        await Client.WriteAsync(go, token);
        streaming();
        var transfer = new DataTransfer(
            Client.Reader,
            context.Timeouts,
            context.Upstream.Lease,
            context.Upstream.Name,
            context.Pipeline,
            new DataLimits(context.MaxMessageSize, context.Options.Smtp.MaxDataLine.ToInt32(), context.Origin.User),
            context.Sink.Recorder,
            context.Logger);
        var result = await transfer.RunAsync(transaction, context.Origin, token);

        // Once the final dot went out the verdict is accounted and passed on even if the session timed out meanwhile
        // (the next read then ends the session): a delivered message must never be recorded as aborted.
        await transaction.FinishAsync(result.Reply.ToString(), result.Outcome, UnsentKind.ClientLeft, CancellationToken.None, recordAfterReply: true);
        try
        {
            var shutdown = context.Timeouts.Shutdown;
            if (shutdown.IsCancellationRequested)
            {
                await Client.TryWriteAsync(result.Reply);
                return StepResult.Closed;
            }

            await Client.WriteAsync(result.Reply, token.IsCancellationRequested ? shutdown : token);
            return result.Close ? StepResult.Closed : StepResult.Success;
        }
        finally
        {
            // Whatever the write did: the transaction is logged and counted exactly once.
            transaction.RecordAfterReply();
        }
    }

    /// <summary>
    /// The upstream's DATA while the pending row commits. Should it throw (the session is cancelled), the row's outcome
    /// is waited for first: whoever ends the transaction then sees whether it is on disk.
    /// </summary>
    private async Task<SmtpReply> DataAlongsideAsync(Task<SmtpReply?> pending, CancellationToken token)
    {
        try
        {
            return await context.Upstream.DataAsync(token);
        }
        catch
        {
            await ((Task)pending).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
            throw;
        }
    }
}
