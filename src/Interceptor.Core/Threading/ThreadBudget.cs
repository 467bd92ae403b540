using System.Diagnostics;

namespace Interceptor.Core.Threading;

/// <summary>
/// Lets a loop whose awaits may all complete at once give its thread up now and then. A client that keeps its commands
/// or its message flowing never makes a session's read wait, and a spool replayed to a fast upstream never makes a write
/// wait: such a loop would hold its thread (in the daemon, a socket thread serving many sessions, or one of the
/// fair-share scheduler's few pumps) for as long as the client keeps sending. After <see cref="Slice"/> of running
/// without a wait, <c>await Task.Yield()</c> queues the rest behind the work that waits: in its user's turn, under the
/// daemon's scheduler.
/// </summary>
/// <remarks>
/// Under a scheduler that says when it started the item running now (<see cref="EnterRun"/>), the slice counts from that
/// start, whatever the loops did since: a wait that completed within the item did not give the thread up. Outside any
/// item, the last wait (or yield) of any of the session's loops counts. A loop that is only a part of its caller's step
/// (a line reader) starts its time again on every call (<see cref="Restart"/>): the time between two calls was the
/// caller's, and a reused upstream session's reader last waited for the previous message's reply (at 50 messages a
/// second, every message's first upstream reply that was already there would be sent back to the queue).
/// </remarks>
public sealed partial class ThreadBudget
{
    /// <summary>Running time without a wait before the loop yields; a pump's slice.</summary>
    public static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// Commands a session outside its context may take one after another without any of its loops waiting before it
    /// goes back to its turn as if it had used up its slice (<see cref="AfterCommandAsync"/>). A client in lock-step
    /// waits for every reply, and the daemon for the upstream's; only pipelined commands answered here (NOOP, RSET, EHLO,
    /// refusals) come without a wait, and a storm of them kept just under the slice (bursts of nearly 1 ms each, 100
    /// sessions' worth on one socket thread) held a newcomer's first step for up to 33 ms. A command answered here costs
    /// a few microseconds, so a burst of this many stays a small fraction of the slice.
    /// </summary>
    public const int CommandsPerBurst = 16;

    // Null: the Stopwatch itself, with no indirection on this per-step path; a test's clock otherwise.
    private readonly TimeProvider? _time;
    private long _since;

    // The session's lane, for a session loop's budget (ForSession); null for every other loop.
    private readonly IStepLane? _lane;

    // Reused for every trip back to the turn (a loop has one step in flight at a time).
    private TurnWait? _turn;

    // Commands taken outside the session's context since the session last waited (AfterCommandAsync), and the session's
    // last wait they are counted from.
    private int _commandsUnwaited;
    private StepWait _commandsSince;

    // The item this thread runs now, if a scheduler said so (see EnterRun).
    [ThreadStatic]
    private static RunState t_run;

    /// <summary>Whether a thread runs a scheduler's item, and since when (on the scheduler's clock).</summary>
    public readonly record struct RunState(bool Running, long Started);

    /// <summary>
    /// A scheduler starts running an item on this thread at <paramref name="timestamp"/> (its clock's; the budgets' must
    /// be the same one). Returns what to give <see cref="ExitRun"/> when the item ends (an item may run inside another).
    /// </summary>
    public static RunState EnterRun(long timestamp)
    {
        var outer = t_run;
        t_run = new RunState(true, timestamp);
        return outer;
    }

    /// <summary>The item <see cref="EnterRun"/> started has ended.</summary>
    public static void ExitRun(RunState outer) => t_run = outer;

    private ThreadBudget(TimeProvider? time, IStepLane? lane)
    {
        _time = time;
        _lane = lane;
        _since = Now();
    }

    public static ThreadBudget Start() => new(null, null);

    /// <summary>
    /// A session loop's budget: after each step it also asks the session's lane (<see cref="StepLanes.Current"/> when
    /// the session was set up) whether the step may go on where it runs, or must go back to the user's turn first.
    /// </summary>
    public static ThreadBudget ForSession() => new(null, StepLanes.Current);

    /// <summary>A budget on <paramref name="time"/>'s clock (tests move it by hand: a real 1 ms slice is at a loaded machine's mercy).</summary>
    internal static ThreadBudget Start(TimeProvider time, IStepLane? lane = null) => new(time, lane);

    /// <summary>
    /// The loop waited (for a client, an upstream): its time starts again, and in a session's flow so does every other
    /// loop's of the session (<see cref="IStepLane.LastWait"/>).
    /// </summary>
    public void Waited()
    {
        _since = Now();
        if ((_lane ?? StepLanes.Current) is { } lane)
        {
            lane.LastWait = new StepWait(_time, _since);
        }
    }

    /// <summary>
    /// A loop that is only a part of its caller's step (a line reader) was called again: its own time starts again, but
    /// nothing waited, so the session's other loops go on counting theirs.
    /// </summary>
    public void Restart() => _since = Now();

    /// <summary>
    /// After a step of the loop: when it <paramref name="waited"/> its time starts again; otherwise, once the slice is
    /// used, the returned task yields the thread.
    /// </summary>
    public ValueTask AfterStepAsync(bool waited)
    {
        if (_lane is { } lane && !lane.GoOnHere())
        {
            return BackToTurnAsync(lane);
        }

        if (waited)
        {
            Waited();
            return ValueTask.CompletedTask;
        }

        return Spent() ? YieldAsync() : ValueTask.CompletedTask;
    }

    /// <summary>
    /// After a command of the session's command loop: <see cref="AfterStepAsync"/>, and outside the session's context
    /// (its user alone, see <see cref="IStepLane"/>) the <see cref="CommandsPerBurst"/>th command in a row that none of
    /// the session's loops waited for counts as a used slice: its lane is told and the loop goes back to its turn.
    /// </summary>
    public ValueTask AfterCommandAsync(bool waited)
    {
        if (!waited && SynchronizationContext.Current is null && (_lane ?? StepLanes.Current) is { } lane)
        {
            if (lane.LastWait != _commandsSince)
            {
                // A loop of the session waited since the count began (the upstream's reply to a relayed command).
                _commandsSince = lane.LastWait;
                _commandsUnwaited = 0;
            }

            if (++_commandsUnwaited >= CommandsPerBurst)
            {
                // The same yield as a slice used up outside the context: into the turn, with the lane told.
                _commandsUnwaited = 0;
                return YieldAsync();
            }
        }

        return AfterStepAsync(waited);
    }

    // The loop itself resumes in its turn: an async helper completing on a pump under the session's context would hand
    // the loop's context-free continuation to the thread pool instead (.NET runs such a continuation inline only where
    // no context is set).
    private ValueTask BackToTurnAsync(IStepLane lane) => (_turn ??= new TurnWait(this)).Start(lane);

    private ValueTask YieldAsync()
    {
        // A session's loop running outside its context yields into its user's turn, not to the thread pool, where a
        // storm's yields would queue ahead of every other user's work, first come, first served. Its lane is told: a user
        // whose sessions keep doing so (a storm of pipelined commands) goes back to its turns. Not in them: there the
        // turns keep it fair, and a bulk mailer's slices now and then on a loaded machine would keep it there for good.
        if (SynchronizationContext.Current is null && (_lane ?? StepLanes.Current) is { } lane)
        {
            lane.SliceUsed();
            return BackToTurnAsync(lane);
        }

        return YieldToContextAsync();
    }

    private async ValueTask YieldToContextAsync()
    {
        await Task.Yield();

        // The time spent queued is not running time: the next slice starts when the loop runs again.
        Waited();
    }

    /// <summary>True once the slice is used, and then the next slice starts: the caller awaits <c>Task.Yield()</c>.</summary>
    public bool Spent()
    {
        var now = Now();
        var run = t_run;
        var from = run.Running ? run.Started : _since;
        if (!run.Running && (_lane ?? StepLanes.Current)?.LastWait is { } wait && ReferenceEquals(wait.Clock, _time) && wait.Timestamp > from)
        {
            // Outside any item: another loop of the session waited since this one's last wait (a step's upstream reply).
            from = wait.Timestamp;
        }

        if (Elapsed(from, now) < Slice)
        {
            return false;
        }

        _since = now;
        return true;
    }

    private long Now() => _time is null ? Stopwatch.GetTimestamp() : _time.GetTimestamp();

    private TimeSpan Elapsed(long from, long to) => _time is null ? Stopwatch.GetElapsedTime(from, to) : _time.GetElapsedTime(from, to);
}
