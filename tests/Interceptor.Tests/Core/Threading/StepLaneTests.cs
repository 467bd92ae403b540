using Interceptor.Core.Threading;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Threading;

/// <summary>
/// A session's loops ask its lane after every step (ThreadBudget.ForSession), and work that may block goes back to the
/// session's turn even while the session runs outside its context (BlockingWork). The lane is a recording fake.
/// </summary>
[TestFixture]
public class StepLaneTests
{
    private readonly SteppedClock _clock = new();

    [Test]
    public void A_step_the_lane_lets_go_on_completes_at_once()
    {
        var lane = new RecordingStepLane { GoOn = true };
        var budget = ThreadBudget.Start(_clock, lane);

        Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True);
        Assert.That(budget.AfterStepAsync(waited: false).AsTask().IsCompleted, Is.True);
        Assert.That(lane.Asked, Is.EqualTo(2), "asked after every step, waited or not");
    }

    [Test]
    public async Task A_step_the_lane_sends_back_resumes_only_through_the_lanes_queue_with_a_fresh_slice()
    {
        var lane = new RecordingStepLane { GoOn = false };
        var budget = ThreadBudget.Start(_clock, lane);
        _clock.Advance(ThreadBudget.Slice * 3);

        var step = budget.AfterStepAsync(waited: false).AsTask();
        Assert.That(step.IsCompleted, Is.False);
        Assert.That(lane.Queued, Has.Count.EqualTo(1), "the rest of the step was queued on the lane");

        lane.Queued[0]();
        await step;
        Assert.That(budget.Spent(), Is.False, "the time queued was not running time");
    }

    [Test]
    public void A_loop_that_is_not_a_sessions_never_asks_a_lane()
    {
        var lane = new RecordingStepLane { GoOn = false };
        var budget = ThreadBudget.Start(_clock);
        Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True);
        Assert.That(lane.Asked, Is.Zero);
    }

    [Test]
    public void A_wait_of_any_loop_of_the_session_gives_its_other_loops_a_fresh_slice()
    {
        // The session's loop relayed a command and its upstream's reply reader waited for the reply: the next command,
        // already there, is read without a yield.
        var lane = new RecordingStepLane { GoOn = true };
        var session = ThreadBudget.Start(_clock, lane);
        var reader = ThreadBudget.Start(_clock, lane);
        _clock.Advance(ThreadBudget.Slice * 20);

        reader.Waited();
        Assert.That(session.Spent(), Is.False, "counted from the reader's wait");
        _clock.Advance(ThreadBudget.Slice);
        Assert.That(session.Spent(), Is.True, "and a slice later it is used");
    }

    [Test]
    public async Task A_loop_called_again_or_a_step_that_did_not_wait_gives_the_others_no_fresh_slice()
    {
        // A line reader restarts its own time on every call; were that a wait, a session reading pipelined NOOPs would
        // never yield.
        var lane = new RecordingStepLane { GoOn = true };
        var session = ThreadBudget.Start(_clock, lane);
        var reader = ThreadBudget.Start(_clock, lane);
        _clock.Advance(ThreadBudget.Slice * 20);

        reader.Restart();
        await reader.AfterStepAsync(waited: false);
        Assert.That(session.Spent(), Is.True);
        Assert.That(reader.Spent(), Is.False, "the reader's own time started again");
    }

    [Test]
    public async Task A_spent_loop_of_a_session_outside_its_context_yields_into_its_turn_not_to_the_thread_pool()
    {
        // A storm of pipelined commands run outside the scheduler: its yields must not queue on the pool ahead of others.
        var lane = new RecordingStepLane { GoOn = true };
        var (completed, step) = await Task.Run(() =>
        {
            StepLanes.Current = lane;
            var reader = ThreadBudget.Start(_clock);
            _clock.Advance(ThreadBudget.Slice * 2);
            var yielding = reader.AfterStepAsync(waited: false).AsTask();
            return (yielding.IsCompleted, yielding);
        });

        Assert.That(completed, Is.False);
        await AssertBackInItsTurnAsAUsedSliceAsync(lane, step);
    }

    // The rest of the step was queued on the lane (not the thread pool), the lane was told, and the step resumes from there.
    private static async Task AssertBackInItsTurnAsAUsedSliceAsync(RecordingStepLane lane, Task step)
    {
        Assert.That(step.IsCompleted, Is.False);
        Assert.That(lane.Queued, Has.Count.EqualTo(1), "queued on the lane");
        Assert.That(lane.SlicesUsed, Is.EqualTo(1), "and the lane told: a user that keeps doing it is a storm");
        lane.Queued[0]();
        await step;
    }

    [Test]
    public async Task A_spent_loop_of_a_session_in_its_context_yields_there_and_leaves_its_lane_alone()
    {
        // In its turns the scheduler keeps it fair; counted there, a bulk mailer's occasional slice on a loaded machine
        // kept it in its turns for good (and cost it the lane's 19%).
        var lane = new RecordingStepLane { GoOn = true };
        var context = new QueueingContext();
        var (completed, step) = await Task.Run(() =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            var budget = ThreadBudget.Start(_clock, lane);
            Assert.That(budget.AfterStepAsync(waited: false).AsTask().IsCompleted, Is.True, "within the slice: no yield, nothing told");
            _clock.Advance(ThreadBudget.Slice * 2);
            var yielding = budget.AfterStepAsync(waited: false).AsTask();
            SynchronizationContext.SetSynchronizationContext(null);
            return (yielding.IsCompleted, yielding);
        });

        Assert.That(completed, Is.False);
        Assert.That(lane.Queued, Is.Empty, "in its context the loop yields to it, not to the lane");
        Assert.That(context.Posted, Has.Count.EqualTo(1));
        Assert.That(lane.SlicesUsed, Is.Zero);
        context.Posted[0]();
        await step;
    }

    [Test]
    public async Task A_burst_of_commands_outside_the_sessions_context_goes_back_to_its_turn_at_the_limit_as_a_used_slice()
    {
        // Pipelined NOOPs in bursts just under the slice: each burst is short in time but long in commands.
        var lane = new RecordingStepLane { GoOn = true };
        var (underLimit, atLimit) = await Task.Run(() =>
        {
            var budget = ThreadBudget.Start(_clock, lane);
            var under = Enumerable.Range(0, ThreadBudget.CommandsPerBurst - 1).All(_ => budget.AfterCommandAsync(waited: false).AsTask().IsCompleted);
            return (under, budget.AfterCommandAsync(waited: false).AsTask());
        });

        Assert.That(underLimit, Is.True, "within the limit every command goes on at once");
        await AssertBackInItsTurnAsAUsedSliceAsync(lane, atLimit);
    }

    [Test]
    public async Task Commands_count_from_the_sessions_last_wait_whichever_loop_waited()
    {
        // Lock-step mail relays most commands and waits for the upstream's reply in another loop: never a burst.
        var lane = new RecordingStepLane { GoOn = true };
        var completed = await Task.Run(() =>
        {
            var session = ThreadBudget.Start(_clock, lane);
            var upstreamReader = ThreadBudget.Start(_clock, lane);
            var all = true;
            for (var i = 0; i < 3 * ThreadBudget.CommandsPerBurst; i++)
            {
                _clock.Advance(TimeSpan.FromMicroseconds(1));
                all &= session.AfterCommandAsync(waited: false).AsTask().IsCompleted;
                if (i % (ThreadBudget.CommandsPerBurst - 1) == ThreadBudget.CommandsPerBurst - 2)
                {
                    upstreamReader.Waited();
                }
            }

            return all;
        });

        Assert.That(completed, Is.True);
        Assert.That(lane.Queued, Is.Empty);
        Assert.That(lane.SlicesUsed, Is.Zero);
    }

    [Test]
    public async Task A_command_the_loop_itself_waited_for_starts_the_count_again()
    {
        // A client in lock-step: the command loop's own read waits for every command, or for one in every few.
        var lane = new RecordingStepLane { GoOn = true };
        var completed = await Task.Run(() =>
        {
            var session = ThreadBudget.Start(_clock, lane);
            var all = true;
            for (var i = 0; i < 3 * ThreadBudget.CommandsPerBurst; i++)
            {
                _clock.Advance(TimeSpan.FromMicroseconds(1));
                var waited = i % (ThreadBudget.CommandsPerBurst - 1) == 0;
                all &= session.AfterCommandAsync(waited).AsTask().IsCompleted;
            }

            return all;
        });

        Assert.That(completed, Is.True);
        Assert.That(lane.Queued, Is.Empty);
        Assert.That(lane.SlicesUsed, Is.Zero);
    }

    [Test]
    public async Task Commands_in_the_sessions_context_are_not_counted()
    {
        // In its turns the scheduler keeps it fair already; only the slice applies there.
        var lane = new RecordingStepLane { GoOn = true };
        var context = new QueueingContext();
        var completed = await Task.Run(() =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            var budget = ThreadBudget.Start(_clock, lane);
            var all = Enumerable.Range(0, 4 * ThreadBudget.CommandsPerBurst).All(_ => budget.AfterCommandAsync(waited: false).AsTask().IsCompleted);
            SynchronizationContext.SetSynchronizationContext(null);
            return all;
        });

        Assert.That(completed, Is.True);
        Assert.That(lane.Queued, Is.Empty);
        Assert.That(context.Posted, Is.Empty);
        Assert.That(lane.SlicesUsed, Is.Zero);
    }

    private sealed class QueueingContext : SynchronizationContext
    {
        public List<Action> Posted { get; } = [];

        public override void Post(SendOrPostCallback d, object? state) => Posted.Add(() => d(state));
    }

    [Test]
    public async Task Blocking_work_of_a_session_outside_its_context_runs_in_the_sessions_turn_marked_as_blocking()
    {
        var lane = new RecordingStepLane();
        var (started, work) = await Task.Run(() =>
        {
            // Inside this flow only: a session's lane is set where the session starts.
            StepLanes.Current = lane;
            var blockingWhileRunning = false;
            var running = BlockingWork.RunAsync(() =>
            {
                blockingWhileRunning = lane.Blocking > 0;
                return ValueTask.FromResult(blockingWhileRunning);
            });
            return (running.IsCompleted, running.AsTask());
        });

        Assert.That(started, Is.False, "not run on the calling thread");
        Assert.That(lane.Queued, Has.Count.EqualTo(1));
        lane.Queued[0]();
        Assert.That(await work, Is.True, "the work ran inside the lane's blocking scope");
        Assert.That(lane.Blocking, Is.Zero, "and the scope ended with it");
    }
}
