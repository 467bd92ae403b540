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
/// thread whose completion woke the session. Under load, so does the item of a light user (see <see cref="UserLoad"/>:
/// no session of the user in the scheduler, not two at once nor more than <see cref="LightStepsPerWindow"/> steps in the
/// last <see cref="LoadWindow"/>), beside the pumps and without a slot: only busier users' items queue. While other
/// users are served too, a pump runs the items of a user with <see cref="FloodSessions"/> sessions in the scheduler at
/// once at nice <see cref="DemotedNice"/> (when the process may go back to 0): the turns share the daemon's time, the
/// kernel shares the cores, and a flood's relaying gives way to the other users' steps, clients and upstreams, while
/// still using what they leave idle. An item cannot be preempted: the session's loops give their thread up after a
/// slice without a wait (Core's ThreadBudget), and work that may block runs on pumps only (Core's BlockingWork).
/// </remarks>
public sealed partial class FairShareScheduler
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

    /// <summary>
    /// How long a user's marks last (busy: not run beside the pumps; flooding: demoted) after it last earned them, and
    /// the window its steps are counted in. A flood is marked for as long as it lasts; a user sending one message at a
    /// time never is.
    /// </summary>
    public static readonly TimeSpan LoadWindow = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Steps (a session's entries into the scheduler) a user may take in one <see cref="LoadWindow"/> and stay light:
    /// about 30 messages a second. Sessions that take turns on one socket thread never have two steps at once, and
    /// would otherwise run there ahead of every other user's completions for as long as they keep it up.
    /// </summary>
    public const int LightStepsPerWindow = 32;

    /// <summary>Sessions of one user in the scheduler at once that mark it as flooding while no other user has more
    /// there: a site's few parallel senders stay below it, a flood's dozens do not, and a neighbour's senders queued
    /// behind a flood stay below the flood's own count.</summary>
    public const int FloodSessions = 4;

    /// <summary>Sessions of one user in the scheduler at once that mark it as flooding whatever other users have there,
    /// so that a flood cannot hide behind a bigger one.</summary>
    public const int FloodSessionsAnyway = 16;


    private readonly object _lock = new();
    private readonly Dictionary<uint, Queue<WorkItem>> _queues = [];

    // Emptied queues kept for the next uid that queues work: a session usually has one continuation queued at a time,
    // so its queue empties on every item taken, and a new one (with its array) would be allocated on every await.
    private const int SpareQueues = 64;
    private readonly Stack<Queue<WorkItem>> _spare = new();

    // The uids with queued work, in turn order: a uid served goes to the back if it has more.
    private readonly Queue<uint> _turns = new();

    // Pumps running a uid's blocking work now (BlockingWork: fsync of a held message, say), for BlockingPumpsPerUser.
    private readonly Dictionary<uint, int> _blockingRunning = [];
    private readonly Action<Action> _startPump;
    private readonly Action<Exception> _onFault;
    private readonly TimeProvider _time;
    private readonly UserLoad _load;
    private readonly Func<int, bool>? _setThreadNice;
    private int _running;
    private volatile bool _demotionFailed;

    /// <param name="concurrency">Pumps at most (items running at once); the processors, for CPU work.</param>
    /// <param name="onFault">Told of an exception that escaped a work item (an async method never lets one escape).</param>
    /// <param name="startPump">Runs a pump; the thread pool by default, a list in tests (deterministic).</param>
    /// <param name="time">Measures a pump's <see cref="Slice"/>; the system's clock by default.</param>
    /// <param name="inlineWhenIdle">Whether an item posted while the scheduler is idle runs on the posting thread (see
    /// <see cref="TryRunHere"/>); off in tests that drive the pumps by hand.</param>
    /// <param name="setThreadNice">Sets the calling thread's nice value (false if refused), for demoting a flooding user's
    /// items; null when the process could not lower it back to 0 (then nothing is demoted).</param>
    /// <param name="pace">Pacing of a flood among others (see the Pacing part); null: never paced.</param>
    /// <param name="onPaceChanged">Told when pacing starts (with the uid whose item saw it, the share of a core and the
    /// pressure), reaches its floor, or ends (share null).</param>
    public FairShareScheduler(int concurrency, Action<Exception> onFault, Action<Action>? startPump = null, TimeProvider? time = null, bool inlineWhenIdle = true,
        Func<int, bool>? setThreadNice = null, PaceSettings? pace = null,
        Action<uint, double?, double>? onPaceChanged = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(concurrency);
        ArgumentNullException.ThrowIfNull(onFault);
        InlineWhenIdle = inlineWhenIdle;
        Concurrency = concurrency;
        _onFault = onFault;
        _time = time ?? TimeProvider.System;
        _load = new UserLoad(_time, LoadWindow, OthersServedFor, LightStepsPerWindow, FloodSessions, FloodSessionsAnyway, SlicesToStayInTurns, PaceWindow);
        _setThreadNice = setThreadNice;
        if (pace is { } p)
        {
            _pace = new FloodPace(LoadWindow, _time.TimestampFrequency, concurrency, p.PressureAbove, p.MinimumShare);
            _paceWindowTicks = (long)(PaceWindow.TotalSeconds * _time.TimestampFrequency);
            _readPressure = p.ReadPressure;
            _threadCpu = p.ThreadCpuNanoseconds;
            _onPaceChanged = onPaceChanged;
            CreatePaceTimers();
        }

        _startPump = startPump ?? (pump => ThreadPool.UnsafeQueueUserWorkItem(static p => p(), pump, preferLocal: false));
    }

    /// <summary>The default concurrency: one pump per processor (at least 2, so one long item never stops everything).</summary>
    public static int DefaultConcurrency => Math.Max(2, Environment.ProcessorCount);

    public int Concurrency { get; }

    /// <summary>
    /// Pumps one user's blocking work may hold at once: all but one (at least one), so another user's work always finds
    /// a pump that no single user's disk waits can take. Its other work still runs on any pump.
    /// </summary>
    public int BlockingPumpsPerUser => Math.Max(1, Concurrency - 1);

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
    public bool IsIdle => Volatile.Read(ref _running) == 0 && !_paceTimerArmed;

    /// <summary>The synchronization context under which a user's session runs: its awaits come back through this scheduler.</summary>
    public UserSynchronizationContext ContextFor(uint uid) => new(this, uid);

    // Set while this thread runs an item: a continuation posted from inside one is queued, never run nested in it.
    [ThreadStatic]
    private static bool t_runningItem;

    // Whether this thread is one of the socket engine's polling threads: 0 not yet known, 1 yes, 2 no.
    [ThreadStatic]
    private static byte t_onSocketThread;

    internal void Enqueue(UserSynchronizationContext context, SendOrPostCallback callback, object? state)
    {
        if (TryRunHere(context, callback, state))
        {
            return;
        }

        Queue(context, callback, state);
    }

    /// <summary>Queues the item for a pump (starting one if a slot is free); never runs it on the calling thread.</summary>
    internal void Queue(UserSynchronizationContext context, SendOrPostCallback callback, object? state)
    {
        var uid = context.Uid;
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
            Entered(context);
            // Not from a demoted thread: the pump could be a new pool thread created by this one, born with its value.
            if (IsHeldBack(uid, context.InBlockingWork, out var until))
            {
                ArmPaceTimer(until);
            }
            else if (_running < Concurrency && !ThreadDemotion.IsDemoted)
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
    /// <see cref="Hosting.SocketThreads"/>); it then takes a slot like a pump. Under load it runs only a light user's
    /// item, beside the pumps and without a slot (so up to one such item per socket thread besides the pumps): a busier
    /// user's step run here would make every other connection of this socket thread wait behind it, outside the users'
    /// turns (a flooding user's steps ahead of another user's, run 5 of issue 19: ×4.7 on the flood target), while a
    /// light user's step queued would wait for a pump busy with the flood's items, and for that pump to get a core.
    /// </summary>
    private bool TryRunHere(UserSynchronizationContext context, SendOrPostCallback callback, object? state)
    {
        // Posted by a thread that finishes its own work first (the store's writer, InlineContinuations.KeepOne): only a
        // light user's step is kept, one a LoadWindow per user (UserLoad.TryKeepFor), to run there beside the pumps once
        // that work is done (besides the one beside item per socket thread, below). Under a flood it would
        // otherwise wait for a pump busy with the flood's items at the flood's priority (bench flood phase, raised
        // limits: the DATA step, which waits for its Pending row, averaged 0.88 ms queued and 0.62-0.67 ms kept).
        var keep = !context.InBlockingWork && InlineWhenIdle && !t_runningItem && InlineContinuations.CanKeep;
        if (!keep && (context.InBlockingWork || !MayRunHere()))
        {
            return false;
        }

        bool beside;
        var paced = false;
        lock (_lock)
        {
            if (!keep && _running == 0 && _turns.Count == 0 && !IsHeldBack(context.Uid, context.InBlockingWork, out _))
            {
                // Idle: nothing runs, and nothing is queued (nor held for a pace window).
                _running++;
                beside = false;
                paced = CountsForPace(context);
            }
            else if (context.InScheduler == 0 && _load.IsLight(context.Uid) && (!keep || _load.TryKeepFor(context.Uid)))
            {
                beside = true;
            }
            else
            {
                return false;
            }

            Entered(context);
        }

        var item = new WorkItem(context, callback, state);
        if (!keep)
        {
            RunHere(item, beside, paced: paced);
        }
        else if (!InlineContinuations.TryKeep(() => RunHere(item, beside, kept: true)))
        {
            // Not kept after all (nothing on this thread took the place since it asked): never run in the middle of
            // the poster's own work, but in its turn.
            lock (_lock)
            {
                Left(context);
            }

            Queue(context, callback, state);
        }

        return true;
    }

    // The item taken by TryRunHere (counted in, and holding a slot unless beside) runs on this thread; a kept one is
    // timed, and a paced one charged.
    private void RunHere(WorkItem item, bool beside, bool kept = false, bool paced = false)
    {
        var context = item.Context;
        var more = false;
        var started = kept ? _time.GetTimestamp() : 0;
        var cpuStarted = paced ? ThreadCpuTicks() : 0;
        try
        {
            Run(item);
        }
        finally
        {
            lock (_lock)
            {
                if (kept)
                {
                    _load.KeptStepTook(context.Uid, started);
                }

                if (paced)
                {
                    ChargePaced(context.Uid, cpuStarted);
                }

                Left(context);
                if (!beside)
                {
                    more = _turns.Count > 0;
                    if (!more)
                    {
                        _running--;
                    }
                }
            }
        }

        if (more)
        {
            // Items were queued meanwhile, perhaps with every other slot taken: this slot becomes a pump for them.
            _startPump(Pump);
        }
    }

    /// <summary>
    /// Only where the poster holds nothing, and never inside another item: a socket completion on the socket engine's
    /// polling thread, or code that said so (<see cref="InlineContinuations.Allow"/>: a session's start). Elsewhere a
    /// Post can come from a task completed under a lock, and the item would run under it; a dedicated thread (the
    /// store's writer) would run session code instead of its own work (except the one step it keeps for after it,
    /// TryRunHere).
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
        UserSynchronizationContext? finished = null;
        var finishedBlocking = false;
        var demoted = false;
        var paced = false;
        long itemStarted = 0;
        if (_setThreadNice is not null && t_niceKnownFor != this && SetNice(0))
        {
            // A pool thread this pump has not seen may have been created by a demoted one, and inherited its value.
            t_niceKnownFor = this;
        }

        try
        {
            for (var done = 0; done < BatchSize && _time.GetElapsedTime(started) < Slice; done++)
            {
                WorkItem item;
                bool demote;
                lock (_lock)
                {
                    // The item just run leaves under the same lock that takes the next.
                    if (finished is not null)
                    {
                        Finished(finished, finishedBlocking, paced, itemStarted);
                        finished = null;
                    }

                    if (!TryTakeNext(out item, out finishedBlocking, out var heldUntil))
                    {
                        if (heldUntil != long.MaxValue)
                        {
                            ArmPaceTimer(heldUntil);
                        }

                        _running--;
                        return;
                    }

                    if (finishedBlocking)
                    {
                        _blockingRunning[item.Context.Uid] = _blockingRunning.GetValueOrDefault(item.Context.Uid) + 1;
                    }

                    // One look at the user's load decides both: this lock is taken for every item a pump runs.
                    var flooding = (_pace is not null || Demotes) && _load.IsFloodingAmongOthers(item.Context.Uid);
                    paced = _pace is not null && flooding;
                    demote = flooding && ShouldDemote(item.Context);
                }

                if (paced)
                {
                    SamplePressure(item.Context.Uid);
                }

                if (demote && SetNice(DemotedNice))
                {
                    demoted = true;
                    ThreadDemotion.Mark(true);
                }

                finished = item.Context;
                itemStarted = paced ? ThreadCpuTicks() : 0;
                Run(item);
                if (demoted)
                {
                    // Back to the normal value before the lock above: a demoted thread preempted while it holds the
                    // scheduler's lock would stall every other user's Post until the flood let it run again.
                    demoted = !RestoreNice();
                }
            }

            if (finished is not null)
            {
                lock (_lock)
                {
                    Finished(finished, finishedBlocking, paced, itemStarted);
                }
            }
        }
        finally
        {
            // A pool thread goes back as it came (an item that threw out of Run left it demoted): whatever runs on it
            // next is not demoted.
            if (demoted)
            {
                RestoreNice();
            }
        }

        // Still work to do: queue ourselves again behind whatever else waits for a pool thread.
        _startPump(Pump);
    }

    // A pump's item has run: its CPU time is spent from its user's pace if it counted, and it leaves. Under the lock.
    private void Finished(UserSynchronizationContext context, bool blocking, bool paced, long cpuStarted)
    {
        if (paced)
        {
            ChargePaced(context.Uid, cpuStarted);
        }

        Left(context, blocking);
    }

    private void Run(WorkItem item)
    {
        var previous = SynchronizationContext.Current;
        var nested = t_runningItem;
        t_runningItem = true;
        SynchronizationContext.SetSynchronizationContext(item.Context);

        // The item's loops count their slice from here (see ThreadBudget).
        var outerRun = ThreadBudget.EnterRun(_time.GetTimestamp());
        try
        {
            item.Callback(item.State);
        }
#pragma warning disable CA1031 // a pump must survive whatever one item does, or its slot would be lost for good
        catch (Exception e)
#pragma warning restore CA1031
        {
            ReportFault(e);
        }
        finally
        {
            ThreadBudget.ExitRun(outerRun);
            t_runningItem = nested;
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }

    private readonly record struct WorkItem(UserSynchronizationContext Context, SendOrPostCallback Callback, object? State);
}
