namespace Interceptor.Core.Threading;

/// <summary>
/// A synchronization context that may run a continuation on the thread that posts it (the daemon's fair-share
/// scheduler, on the threads that poll the sockets) and can be asked not to while its session does work that may block.
/// </summary>
public interface IBlockingWorkContext
{
    /// <summary>Until the scope is disposed, this context's continuations are queued for its own threads, never run where posted.</summary>
    IDisposable EnterBlockingWork();
}

/// <summary>
/// Work on a session's path that may block its thread: file reads and fsync of a spooled or held message, DKIM signing,
/// a TLS handshake, an nft run for a suspension. Under a session's context it runs on the context's own threads (the
/// daemon's fair-share pumps: still in its user's turn, never on a socket thread that serves other sessions), also when
/// the session runs outside its context for now (<see cref="IStepLane"/>); outside sessions, on the thread pool.
/// </summary>
public static class BlockingWork
{
    public static async ValueTask<T> RunAsync<T>(Func<ValueTask<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var lane = StepLanes.Current;
        if (SynchronizationContext.Current is IBlockingWorkContext context && (lane is null || ReferenceEquals(context, lane)))
        {
            using (context.EnterBlockingWork())
            {
                // Queued, not run here: the rest of this method starts on one of the context's own threads.
                await Task.Yield();
                return await work();
            }
        }

        if (lane is not null)
        {
            // A session running outside its context (IStepLane): back to its turn, on the context's own threads.
            using (lane.EnterBlockingWork())
            {
                await StepLanes.BackToTurn(lane);
                return await work();
            }
        }

        return await ThreadDemotion.RunNormal(() => work().AsTask());
    }

    public static async ValueTask RunAsync(Func<ValueTask> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        await RunAsync(async () =>
        {
            await work();
            return true;
        });
    }
}
