using Interceptor.Core.Threading;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Threading;

/// <summary>A loop that never waits gives its thread up once its slice is used, and only then.</summary>
[TestFixture]
public class ThreadBudgetTests
{
    // A clock moved by hand: with the real one, a 1 ms slice is at the mercy of a loaded machine's scheduler.
    private readonly SteppedClock _clock = new();

    [Test]
    public void Within_the_slice_a_step_goes_on_at_once()
    {
        var budget = ThreadBudget.Start(_clock);
        _clock.Advance(ThreadBudget.Slice / 2);

        Assert.That(budget.Spent(), Is.False);
        Assert.That(budget.AfterStepAsync(waited: false).AsTask().IsCompleted, Is.True);
    }

    [Test]
    public async Task Once_the_slice_is_used_the_step_yields_and_the_next_slice_starts()
    {
        var budget = ThreadBudget.Start(_clock);
        _clock.Advance(ThreadBudget.Slice);

        Assert.That(budget.Spent(), Is.True, "the slice is used: yield");
        Assert.That(budget.Spent(), Is.False, "and a fresh slice starts");

        _clock.Advance(ThreadBudget.Slice * 3);
        var step = budget.AfterStepAsync(waited: false);
        Assert.That(step.IsCompleted, Is.False, "the step yields its thread");
        await step;
        Assert.That(budget.Spent(), Is.False, "yielding started a fresh slice too");
    }

    [Test]
    public void A_step_that_waited_starts_the_slice_again_and_does_not_yield()
    {
        var budget = ThreadBudget.Start(_clock);
        _clock.Advance(ThreadBudget.Slice * 3);

        Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True);
        Assert.That(budget.Spent(), Is.False, "the time spent waiting is not counted");
    }

    [Test]
    public void A_loop_that_last_waited_long_ago_goes_on_in_an_item_that_has_just_begun()
    {
        // A reused upstream session's reader: its last wait was for the previous message's reply.
        var budget = ThreadBudget.Start(_clock);
        _clock.Advance(ThreadBudget.Slice * 20);
        var outer = ThreadBudget.EnterRun(_clock.GetTimestamp());
        try
        {
            _clock.Advance(ThreadBudget.Slice / 2);
            Assert.That(budget.AfterStepAsync(waited: false).AsTask().IsCompleted, Is.True, "half a slice into the item: go on");

            _clock.Advance(ThreadBudget.Slice);
            Assert.That(budget.Spent(), Is.True, "the item itself ran past its slice");
        }
        finally
        {
            ThreadBudget.ExitRun(outer);
        }
    }

    [Test]
    public void Inside_an_item_a_wait_that_did_not_give_the_thread_up_does_not_start_the_slice_again()
    {
        var budget = ThreadBudget.Start(_clock);
        var outer = ThreadBudget.EnterRun(_clock.GetTimestamp());
        try
        {
            _clock.Advance(ThreadBudget.Slice * 0.8);
            Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True, "a read that completed within the item");
            _clock.Advance(ThreadBudget.Slice * 0.4);
            Assert.That(budget.Spent(), Is.True, "the item has held its thread for more than a slice");
        }
        finally
        {
            ThreadBudget.ExitRun(outer);
        }
    }

    [Test]
    public void An_item_that_ends_gives_the_thread_back_its_outer_item_or_none()
    {
        var budget = ThreadBudget.Start(_clock);
        var outside = ThreadBudget.EnterRun(_clock.GetTimestamp());
        _clock.Advance(ThreadBudget.Slice * 2);
        var inner = ThreadBudget.EnterRun(_clock.GetTimestamp());
        Assert.That(budget.Spent(), Is.False, "the inner item has just begun");
        ThreadBudget.ExitRun(inner);

        Assert.That(budget.Spent(), Is.True, "the outer item began two slices ago");
        ThreadBudget.ExitRun(outside);
        _clock.Advance(ThreadBudget.Slice * 2);
        Assert.That(budget.Spent(), Is.True, "outside any item the loop's own last wait (or slice) counts");
    }

    [Test]
    public void The_real_clock_budget_yields_once_a_slice_has_really_passed()
    {
        var budget = ThreadBudget.Start();
        Thread.Sleep(ThreadBudget.Slice * 3);

        Assert.That(budget.Spent(), Is.True);
    }
}
