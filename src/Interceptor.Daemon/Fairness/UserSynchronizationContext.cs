using Interceptor.Core.Threading;

namespace Interceptor.Daemon.Fairness;

/// <summary>
/// One session's context, under its user's uid: what the session's <c>await</c> captures, so its continuation is queued
/// under the uid in the <see cref="FairShareScheduler"/> instead of going straight to the thread pool.
/// </summary>
public sealed class UserSynchronizationContext : SynchronizationContext, IStepLane
{
    private readonly FairShareScheduler _scheduler;
    private int _blockingWork;

    internal UserSynchronizationContext(FairShareScheduler scheduler, uint uid)
    {
        _scheduler = scheduler;
        Uid = uid;
    }

    public uint Uid { get; }

    /// <summary>The session's items in the scheduler now (queued or running); the scheduler's, under its lock.</summary>
    internal int InScheduler;

    /// <summary>The session is in work that may block (see <see cref="BlockingWork"/>): its items run on pumps only.</summary>
    public bool InBlockingWork => Volatile.Read(ref _blockingWork) > 0;

    public IDisposable EnterBlockingWork()
    {
        Interlocked.Increment(ref _blockingWork);
        return new BlockingScope(this);
    }

    public override void Post(SendOrPostCallback d, object? state) => _scheduler.Enqueue(this, d, state);

    /// <inheritdoc/>
    public bool GoOnHere() => _scheduler.GoOnHere(this);

    /// <inheritdoc/>
    public void Queue(Action continuation) => _scheduler.Queue(this, static c => ((Action)c!)(), continuation);

    /// <inheritdoc/>
    public void SliceUsed() => _scheduler.SliceUsed(Uid);

    /// <inheritdoc/>
    public StepWait LastWait { get; set; }

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>
    /// Runs <paramref name="work"/> under this context from its first line, so every continuation in it is scheduled
    /// fairly (while its user is alone, outside it: see <see cref="IStepLane"/>); the returned task ends with it (its
    /// exception included). Call it holding no lock: when nothing waits, the
    /// work's first step runs before this returns.
    /// </summary>
    public Task RunAsync(Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        // Not RunContinuationsAsynchronously: the caller's end of the connection (bookkeeping, the socket's close) runs
        // where the session's last step ran. Outside the context that is a socket thread, and a pool hop there woke an
        // idle worker once per relayed message (README, Performance, sixteenth session). On a pump it runs inside the
        // item, where whatever it posts is queued, never nested (the scheduler's t_runningItem).
        var ended = new TaskCompletionSource();

        // The caller's execution context (its log scope names the session) goes with the work, as Task.Run's would;
        // the awaits inside carry it on by themselves.
        bool startHere;
        using (InlineContinuations.Allow())
        {
            startHere = _scheduler.MayStartHere(this);
        }

        if (startHere)
        {
            // Its user is alone: the session starts here, outside its context, as its later steps will run; not inside the
            // permission above, under which whatever the step posts would run nested in it.
            Start(work, ended);
            return ended.Task;
        }

        var flow = ExecutionContext.Capture();
        using var holdingNothing = InlineContinuations.Allow();
        Post(_ =>
        {
            if (flow is null)
            {
                Start(work, ended);
            }
            else
            {
                ExecutionContext.Run(flow, _ => Start(work, ended), null);
            }
        }, null);
        return ended.Task;
    }

    private sealed class BlockingScope(UserSynchronizationContext context) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref context._blockingWork);
            }
        }
    }

    // The session's flow knows its lane from its first line (an async method: the value goes no further than its flow).
    private async Task InLane(Func<Task> work)
    {
        StepLanes.Current = this;
        await work();
    }

    private void Start(Func<Task> work, TaskCompletionSource ended)
    {
        Task task;
        try
        {
            task = InLane(work);
        }
#pragma warning disable CA1031 // handed to the caller through the task, as an async method would
        catch (Exception e)
#pragma warning restore CA1031
        {
            ended.TrySetException(e);
            return;
        }

        task.ContinueWith(
            static (t, state) =>
            {
                var tcs = (TaskCompletionSource)state!;
                if (t.IsFaulted)
                {
                    tcs.TrySetException(t.Exception!.InnerExceptions);
                }
                else if (t.IsCanceled)
                {
                    tcs.TrySetCanceled();
                }
                else
                {
                    tcs.TrySetResult();
                }
            },
            ended,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }
}
