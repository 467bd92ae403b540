using Interceptor.Core.Threading;

namespace Interceptor.Daemon.Fairness;

/// <summary>
/// Runs the sessions' work fairly across users (issue 19): every continuation of a session (the CPU work between two
/// awaits: parsing a command, the policy, a DATA chunk, the journal) is queued under its user's uid, and at most
/// <see cref="Concurrency"/> pumps run the queues round-robin, one item per uid per turn. A user with 100 busy sessions
/// therefore gets one turn for every turn of a user with one session, instead of 100 (first come, first served, as the
/// thread pool's single queue does). Waiting for I/O holds nothing: only runnable work is queued, so a user's slow
/// upstream never slows another user and a user alone is never held back (the scheduler is work-conserving).
/// </summary>
/// <remarks>
/// Cheap on the hot path: one short lock to queue an item and one to take it, no allocation beyond the item itself
/// (queues are kept while a uid has work and dropped when it has none). A pump gives its thread back to the pool
/// after <see cref="BatchSize"/> items or <see cref="Slice"/>, so timers and the rest of the pool's work are never
/// starved. When nothing runs or waits, an item runs on the thread that posts it (<see cref="TryRunHere"/>): usually the socket
/// thread whose completion woke the session. An item cannot be preempted: the session's loops give their thread up
/// after a slice without a wait (Core's ThreadBudget), and work that may block runs on pumps only (Core's BlockingWork).
/// </remarks>
public sealed class FairShareScheduler
{
    /// <summary>Items a pump runs before it gives its thread back to the pool (and queues itself again).</summary>
    public const int BatchSize = 64;

    /// <summary>
    /// Time a pump runs items before it gives its thread back, whatever their count. With the thread pool's dispatch of
    /// socket completions (inline completions off) the completions run on the same pool threads: a pump that kept its
    /// thread for 64 long items (a storm session's 100 pipelined commands each) made another user's completion wait
    /// behind them in the pool's queue before it could even be queued here (FairSchedulingTests).
    /// </summary>
    public static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(1);

    private readonly object _lock = new();
    private readonly Dictionary<uint, Queue<WorkItem>> _queues = [];

    // Emptied queues kept for the next uid that queues work: a session usually has one continuation queued at a time,
    // so its queue empties on every item taken, and a new one (with its array) would be allocated on every await.
    private const int SpareQueues = 64;
    private readonly Stack<Queue<WorkItem>> _spare = new();

    // The uids with queued work, in turn order: a uid served goes to the back if it has more.
    private readonly Queue<uint> _turns = new();
    private readonly Action<Action> _startPump;
    private readonly Action<Exception> _onFault;
    private readonly TimeProvider _time;
    private int _running;

    /// <param name="concurrency">Pumps at most (items running at once); the processors, for CPU work.</param>
    /// <param name="onFault">Told of an exception that escaped a work item (an async method never lets one escape).</param>
    /// <param name="startPump">Runs a pump; the thread pool by default, a list in tests (deterministic).</param>
    /// <param name="time">Measures a pump's <see cref="Slice"/>; the system's clock by default.</param>
    /// <param name="inlineWhenIdle">Whether an item posted while the scheduler is idle runs on the posting thread (see
    /// <see cref="TryRunHere"/>); off in tests that drive the pumps by hand.</param>
    public FairShareScheduler(int concurrency, Action<Exception> onFault, Action<Action>? startPump = null, TimeProvider? time = null, bool inlineWhenIdle = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(concurrency);
        ArgumentNullException.ThrowIfNull(onFault);
        InlineWhenIdle = inlineWhenIdle;
        Concurrency = concurrency;
        _onFault = onFault;
        _time = time ?? TimeProvider.System;
        _startPump = startPump ?? (pump => ThreadPool.UnsafeQueueUserWorkItem(static p => p(), pump, preferLocal: false));
    }

    /// <summary>The default concurrency: one pump per processor (at least 2, so one long item never stops everything).</summary>
    public static int DefaultConcurrency => Math.Max(2, Environment.ProcessorCount);

    public int Concurrency { get; }

    public bool InlineWhenIdle { get; }

    /// <summary>Items queued and not yet started, all users together.</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _queues.Values.Sum(q => q.Count);
            }
        }
    }

    /// <summary>
    /// Nothing runs or waits: what a socket thread may then do itself (a connection's start, InterceptListener) takes
    /// nobody's turn. Under load the users' turns decide, and work that is not a session's goes to the pool.
    /// </summary>
    public bool IsIdle => Volatile.Read(ref _running) == 0;

    /// <summary>The synchronization context under which a user's session runs: its awaits come back through this scheduler.</summary>
    public UserSynchronizationContext ContextFor(uint uid) => new(this, uid);

    // Set while this thread runs an item: a continuation posted from inside one is queued, never run nested in it.
    [ThreadStatic]
    private static bool t_runningItem;

    // Whether this thread is one of the socket engine's polling threads: 0 not yet known, 1 yes, 2 no.
    [ThreadStatic]
    private static byte t_onSocketThread;

    internal void Enqueue(uint uid, UserSynchronizationContext context, SendOrPostCallback callback, object? state)
    {
        if (TryRunHere(context, callback, state))
        {
            return;
        }

        var start = false;
        lock (_lock)
        {
            if (!_queues.TryGetValue(uid, out var queue))
            {
                queue = _spare.TryPop(out var spare) ? spare : new Queue<WorkItem>();
                _queues[uid] = queue;
                _turns.Enqueue(uid);
            }

            queue.Enqueue(new WorkItem(context, callback, state));
            if (_running < Concurrency)
            {
                _running++;
                start = true;
            }
        }

        if (start)
        {
            _startPump(Pump);
        }
    }

    /// <summary>
    /// Runs the item on the posting thread when the scheduler is idle: the socket completion that woke a session then
    /// runs its step at once, instead of waking a pump (a wake-up of an idle thread per lock-step exchange; see
    /// <see cref="Hosting.SocketThreads"/>). Fair by construction: it happens only when nothing else runs or waits, and
    /// it takes a slot like a pump, so <see cref="Concurrency"/> still bounds what runs at once.
    /// </summary>
    private bool TryRunHere(UserSynchronizationContext context, SendOrPostCallback callback, object? state)
    {
        if (context.InBlockingWork || !MayRunHere())
        {
            return false;
        }

        lock (_lock)
        {
            // Only when the scheduler is idle: no pump running (so nothing queued either). Under load, a step run here
            // would make every other connection of this socket thread wait behind it, outside the users' turns (a
            // flooding user's steps ahead of another user's, run 5 of issue 19: ×4.7 on the flood target); queued, the
            // turns decide.
            if (_running > 0)
            {
                return false;
            }

            _running++;
        }

        Run(new WorkItem(context, callback, state));
        bool more;
        lock (_lock)
        {
            more = _turns.Count > 0;
            if (!more)
            {
                _running--;
            }
        }

        if (more)
        {
            // Items were queued meanwhile, perhaps with every other slot taken: this slot becomes a pump for them.
            _startPump(Pump);
        }

        return true;
    }

    /// <summary>
    /// Only where the poster holds nothing, and never inside another item: a socket completion on the socket engine's
    /// polling thread, or code that said so (<see cref="InlineContinuations.Allow"/>: a session's start). Elsewhere a
    /// Post can come from a task completed under a lock, and the item would run under it; a dedicated thread (the
    /// store's writer) would run session code instead of its own work.
    /// </summary>
    private bool MayRunHere()
    {
        if (t_runningItem || !InlineWhenIdle)
        {
            return false;
        }

        if (InlineContinuations.Allowed)
        {
            return true;
        }

        if (t_onSocketThread == 0)
        {
            t_onSocketThread = Thread.CurrentThread.Name == Hosting.SocketThreads.EngineThreadName ? (byte)1 : (byte)2;
        }

        return t_onSocketThread == 1;
    }

    private void Pump()
    {
        var started = _time.GetTimestamp();
        for (var done = 0; done < BatchSize && _time.GetElapsedTime(started) < Slice; done++)
        {
            WorkItem item;
            lock (_lock)
            {
                if (!TryTakeNext(out item))
                {
                    _running--;
                    return;
                }
            }

            Run(item);
        }

        // Still work to do: queue ourselves again behind whatever else waits for a pool thread.
        _startPump(Pump);
    }

    // Round-robin: the uid at the front of the turns gives one item and goes to the back if it has more.
    private bool TryTakeNext(out WorkItem item)
    {
        if (!_turns.TryDequeue(out var uid))
        {
            item = default;
            return false;
        }

        var queue = _queues[uid];
        item = queue.Dequeue();
        if (queue.Count > 0)
        {
            _turns.Enqueue(uid);
        }
        else
        {
            _queues.Remove(uid);
            if (_spare.Count < SpareQueues)
            {
                // Dequeue cleared the slot it took: the queue keeps no reference to a finished item.
                _spare.Push(queue);
            }
        }

        return true;
    }

    private void Run(WorkItem item)
    {
        var previous = SynchronizationContext.Current;
        var nested = t_runningItem;
        t_runningItem = true;
        SynchronizationContext.SetSynchronizationContext(item.Context);
        try
        {
            item.Callback(item.State);
        }
#pragma warning disable CA1031 // a pump must survive whatever one item does, or its slot would be lost for good
        catch (Exception e)
#pragma warning restore CA1031
        {
            _onFault(e);
        }
        finally
        {
            t_runningItem = nested;
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    private readonly record struct WorkItem(UserSynchronizationContext Context, SendOrPostCallback Callback, object? State);
}

/// <summary>
/// One session's context, under its user's uid: what the session's <c>await</c> captures, so its continuation is queued
/// under the uid in the <see cref="FairShareScheduler"/> instead of going straight to the thread pool.
/// </summary>
public sealed class UserSynchronizationContext : SynchronizationContext, IBlockingWorkContext
{
    private readonly FairShareScheduler _scheduler;
    private int _blockingWork;

    internal UserSynchronizationContext(FairShareScheduler scheduler, uint uid)
    {
        _scheduler = scheduler;
        Uid = uid;
    }

    public uint Uid { get; }

    /// <summary>The session is in work that may block (see <see cref="BlockingWork"/>): its items run on pumps only.</summary>
    public bool InBlockingWork => Volatile.Read(ref _blockingWork) > 0;

    public IDisposable EnterBlockingWork()
    {
        Interlocked.Increment(ref _blockingWork);
        return new BlockingScope(this);
    }

    public override void Post(SendOrPostCallback d, object? state) => _scheduler.Enqueue(Uid, this, d, state);

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>
    /// Runs <paramref name="work"/> under this context from its first line, so every continuation in it is scheduled
    /// fairly; the returned task ends with it (its exception included). Call it holding no lock: when nothing waits, the
    /// work's first step runs before this returns.
    /// </summary>
    public Task RunAsync(Func<Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // The caller's execution context (its log scope names the session) goes with the work, as Task.Run's would;
        // the awaits inside carry it on by themselves.
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

    private static void Start(Func<Task> work, TaskCompletionSource ended)
    {
        Task task;
        try
        {
            task = work();
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
