using System.Runtime.CompilerServices;

namespace Interceptor.Core.Threading;

/// <summary>
/// Where a session's steps run: the daemon's fair-share scheduler, through the session's synchronization context. A
/// session may run its steps outside that context while the lane allows it (the daemon: while its user is the only one
/// with work, so there is nobody to be fair to); its awaits then capture no context and resume where their I/O
/// completes, with no queue and no bookkeeping. The session's loops ask the lane after every step
/// (<see cref="ThreadBudget"/>) and go back to their turn when it says so.
/// </summary>
public interface IStepLane : IBlockingWorkContext
{
    /// <summary>
    /// After a step of the session's loop, on the thread that runs it: true to go on here (when the lane allows it,
    /// outside the context from now on: the next awaits capture none); false when the session must go back to its turn
    /// first (<see cref="StepLanes.BackToTurn"/>).
    /// </summary>
    bool GoOnHere();

    /// <summary>Runs <paramref name="continuation"/> in the session's turn, under its context; never on the calling thread.</summary>
    void Queue(Action continuation);

    /// <summary>
    /// A loop of the session outside its context used up its slice and yields into its turn (<see cref="ThreadBudget"/>):
    /// a user whose sessions keep doing so is a storm, and goes back to its turns for a while.
    /// </summary>
    void SliceUsed();

    /// <summary>
    /// When a loop of the session last waited (or was queued), on its budget's clock: every loop of the session counts
    /// its slice from there at the latest. A step that relayed a command and waited for the upstream's reply did not hold
    /// its thread while it waited; counted as running, it would yield at the next command already there, as a storm does.
    /// </summary>
    StepWait LastWait { get; set; }
}

/// <summary>A wait of one of a session's loops: when, on which clock (null: the <see cref="System.Diagnostics.Stopwatch"/>).</summary>
public readonly record struct StepWait(TimeProvider? Clock, long Timestamp);

/// <summary>The lane of the session whose flow runs now, and the way back to its turn.</summary>
public static class StepLanes
{
    private static readonly AsyncLocal<IStepLane?> s_current = new();

    /// <summary>
    /// The lane of the session whose flow this is: set once where the session starts (it flows with every continuation
    /// of the session, with or without its context), null outside sessions.
    /// </summary>
    public static IStepLane? Current
    {
        get => s_current.Value;
        set => s_current.Value = value;
    }

    /// <summary><c>await StepLanes.BackToTurn(lane)</c>: the rest of the awaiting method runs in the session's turn.</summary>
    public static BackToTurnAwaitable BackToTurn(IStepLane lane)
    {
        ArgumentNullException.ThrowIfNull(lane);
        return new BackToTurnAwaitable(lane);
    }

    /// <summary>Queues the awaiting method's continuation on the lane; never completes synchronously.</summary>
    public readonly struct BackToTurnAwaitable : ICriticalNotifyCompletion
    {
        private readonly IStepLane _lane;

        internal BackToTurnAwaitable(IStepLane lane) => _lane = lane;

        public BackToTurnAwaitable GetAwaiter() => this;

        public bool IsCompleted => false;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation)
        {
            // As any awaiter must on this path: the caller's execution context goes with the continuation.
            var flow = ExecutionContext.Capture();
            _lane.Queue(flow is null ? continuation : () => ExecutionContext.Run(flow, static c => ((Action)c!)(), continuation));
        }

        // An async method's continuation restores its own execution context.
        public void UnsafeOnCompleted(Action continuation) => _lane.Queue(continuation);
    }
}
