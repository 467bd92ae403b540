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
}

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
