using Interceptor.Core.Threading;

namespace Interceptor.Tests.Core.Threading;

/// <summary>A loop that never waits gives its thread up once its slice is used, and only then.</summary>
[TestFixture]
public class ThreadBudgetTests
{
    [Test]
    public void Within_the_slice_a_step_goes_on_at_once()
    {
        var budget = ThreadBudget.Start();

        Assert.That(budget.Spent(), Is.False);
        Assert.That(budget.AfterStepAsync(waited: false).AsTask().IsCompleted, Is.True);
    }

    [Test]
    public async Task Once_the_slice_is_used_the_step_yields_and_the_next_slice_starts()
    {
        var budget = ThreadBudget.Start();
        Thread.Sleep(ThreadBudget.Slice * 3);

        Assert.That(budget.Spent(), Is.True, "the slice is used: yield");
        Assert.That(budget.Spent(), Is.False, "and a fresh slice starts");

        Thread.Sleep(ThreadBudget.Slice * 3);
        await budget.AfterStepAsync(waited: false);
        Assert.That(budget.Spent(), Is.False, "yielding started a fresh slice too");
    }

    [Test]
    public void A_step_that_waited_starts_the_slice_again_and_does_not_yield()
    {
        var budget = ThreadBudget.Start();
        Thread.Sleep(ThreadBudget.Slice * 3);

        Assert.That(budget.AfterStepAsync(waited: true).AsTask().IsCompleted, Is.True);
        Assert.That(budget.Spent(), Is.False, "the time spent waiting is not counted");
    }
}
