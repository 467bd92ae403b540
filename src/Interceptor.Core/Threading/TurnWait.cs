using System.Threading.Tasks.Sources;

namespace Interceptor.Core.Threading;

public sealed partial class ThreadBudget
{
    /// <summary>
    /// What a loop awaits to go back to its session's turn: the awaiting method's own continuation is queued on the lane
    /// and runs on a pump under the session's context, so its next awaits go through the scheduler again.
    /// </summary>
    private sealed class TurnWait(ThreadBudget budget) : IValueTaskSource
    {
        private IStepLane? _lane;
        private short _version;
        private volatile bool _resumed;

        public ValueTask Start(IStepLane lane)
        {
            _lane = lane;
            _resumed = false;
            return new ValueTask(this, ++_version);
        }

        public ValueTaskSourceStatus GetStatus(short token)
        {
            Check(token);
            return _resumed ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Pending;
        }

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            Check(token);
            // An async method's await restores its own execution context; anyone else's is carried here.
            var flow = (flags & ValueTaskSourceOnCompletedFlags.FlowExecutionContext) != 0 ? ExecutionContext.Capture() : null;
            _lane!.Queue(() =>
            {
                _resumed = true;

                // The time spent queued is not running time: the next slice starts when the loop runs again.
                budget.Waited();
                if (flow is null)
                {
                    continuation(state);
                }
                else
                {
                    ExecutionContext.Run(flow, s => continuation(s), state);
                }
            });
        }

        public void GetResult(short token) => Check(token);

        // A ValueTask of an earlier trip, used after this one started: a misuse that must not pass for this trip's.
        private void Check(short token)
        {
            if (token != _version)
            {
                throw new InvalidOperationException("this wait for the session's turn is over; a ValueTask is awaited once");
            }
        }
    }
}
