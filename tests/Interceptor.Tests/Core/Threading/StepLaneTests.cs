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
        var lane = new RecordingLane { GoOn = true };
        var budget = ThreadBudget.Start(_clock, lane);

        Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True);
        Assert.That(budget.AfterStepAsync(waited: false).AsTask().IsCompleted, Is.True);
        Assert.That(lane.Asked, Is.EqualTo(2), "asked after every step, waited or not");
    }

    [Test]
    public async Task A_step_the_lane_sends_back_resumes_only_through_the_lanes_queue_with_a_fresh_slice()
    {
        var lane = new RecordingLane { GoOn = false };
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
        var lane = new RecordingLane { GoOn = false };
        var budget = ThreadBudget.Start(_clock);
        Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True);
        Assert.That(lane.Asked, Is.Zero);
    }

    [Test]
    public async Task Another_loop_on_the_thread_counts_its_slice_from_the_last_lane_step_that_waited()
    {
        // A reused upstream's reply reader last waited a message ago; its reply is read within the step the client's
        // command started, and must not yield the thread as if it had run since.
        var session = ThreadBudget.Start(_clock, new RecordingLane { GoOn = true });
        var reader = ThreadBudget.Start(_clock);
        _clock.Advance(ThreadBudget.Slice * 20);
        await session.AfterStepAsync(waited: true);

        Assert.That(reader.Spent(), Is.False, "the reader's slice counts from the step's start");
        _clock.Advance(ThreadBudget.Slice);
        Assert.That(reader.Spent(), Is.True, "and ends a slice later");
    }

    [Test]
    public async Task A_lane_step_that_did_not_wait_gives_other_loops_no_fresh_slice()
    {
        // A session storming with pipelined commands never waits: its other loops keep their own slices.
        var session = ThreadBudget.Start(_clock, new RecordingLane { GoOn = true });
        var reader = ThreadBudget.Start(_clock);
        _clock.Advance(ThreadBudget.Slice * 20);
        await session.AfterStepAsync(waited: false);

        Assert.That(reader.Spent(), Is.True);
    }

    [Test]
    public async Task A_spent_loop_of_a_session_outside_its_context_yields_into_its_turn_not_to_the_thread_pool()
    {
        // A storm of pipelined commands run outside the scheduler: its yields must not queue on the pool ahead of others.
        var lane = new RecordingLane { GoOn = true };
        var (completed, step) = await Task.Run(() =>
        {
            StepLanes.Current = lane;
            var reader = ThreadBudget.Start(_clock);
            _clock.Advance(ThreadBudget.Slice * 2);
            var yielding = reader.AfterStepAsync(waited: false).AsTask();
            return (yielding.IsCompleted, yielding);
        });

        Assert.That(completed, Is.False);
        Assert.That(lane.Queued, Has.Count.EqualTo(1), "queued on the lane");
        lane.Queued[0]();
        await step;
    }

    [Test]
    public async Task Blocking_work_of_a_session_outside_its_context_runs_in_the_sessions_turn_marked_as_blocking()
    {
        var lane = new RecordingLane();
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

    private sealed class RecordingLane : IStepLane
    {
        public bool GoOn { get; init; }

        public int Asked { get; private set; }

        public int Blocking;

        public List<Action> Queued { get; } = [];

        public bool GoOnHere()
        {
            Asked++;
            return GoOn;
        }

        public void Queue(Action continuation) => Queued.Add(continuation);

        public IDisposable EnterBlockingWork()
        {
            Interlocked.Increment(ref Blocking);
            return new Scope(this);
        }

        private sealed class Scope(RecordingLane lane) : IDisposable
        {
            public void Dispose() => Interlocked.Decrement(ref lane.Blocking);
        }
    }
}
