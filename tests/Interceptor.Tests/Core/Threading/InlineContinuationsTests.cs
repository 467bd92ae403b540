using Interceptor.Core.Threading;

namespace Interceptor.Tests.Core.Threading;

/// <summary>
/// <see cref="InlineContinuations.KeepOne"/>: a thread finishing work of its own (the store's writer settling a batch)
/// keeps one continuation, runs it when it says so, never drops it, and keeps nothing outside the scope or from inside
/// the kept work.
/// </summary>
[TestFixture]
public sealed class InlineContinuationsTests
{
    [Test]
    public void Outside_a_scope_nothing_is_kept()
    {
        Assert.That(InlineContinuations.CanKeep, Is.False);
        Assert.That(InlineContinuations.TryKeep(() => Assert.Fail("never kept, never run")), Is.False);
    }

    [Test]
    public void One_continuation_is_kept_and_runs_only_when_the_scope_runs_it()
    {
        var ran = new List<string>();
        using (var keep = InlineContinuations.KeepOne())
        {
            Assert.That(InlineContinuations.CanKeep, Is.True);
            Assert.That(InlineContinuations.TryKeep(() => ran.Add("first")), Is.True);
            Assert.That(InlineContinuations.CanKeep, Is.False, "one a scope");
            Assert.That(InlineContinuations.TryKeep(() => ran.Add("second")), Is.False);
            Assert.That(ran, Is.Empty, "kept, not run");

            Assert.That(InlineContinuations.RunKept(), Is.True);
            Assert.That(ran, Is.EqualTo(new[] { "first" }));
            Assert.That(InlineContinuations.RunKept(), Is.False, "run once");
        }

        Assert.That(ran, Is.EqualTo(new[] { "first" }), "the scope's end runs nothing more");
        Assert.That(InlineContinuations.CanKeep, Is.False);
    }

    [Test]
    public void What_the_kept_work_posts_is_not_kept_again()
    {
        bool? couldKeepInside = null;
        using (var keep = InlineContinuations.KeepOne())
        {
            InlineContinuations.TryKeep(() => couldKeepInside = InlineContinuations.CanKeep);
            Assert.That(InlineContinuations.RunKept(), Is.True);
        }

        Assert.That(couldKeepInside, Is.False);
    }

    [Test]
    public void A_kept_continuation_still_runs_when_the_scope_ends_early()
    {
        var ran = false;
        Assert.Throws<InvalidOperationException>(() =>
        {
            using var keep = InlineContinuations.KeepOne();
            InlineContinuations.TryKeep(() => ran = true);
            throw new InvalidOperationException("the batch's settling failed");
        });

        Assert.That(ran, Is.True, "a session's step is never dropped");
        Assert.That(InlineContinuations.CanKeep, Is.False);
    }

    [Test]
    public void Another_thread_keeps_nothing_while_this_one_keeps()
    {
        using var keep = InlineContinuations.KeepOne();
        var elsewhere = true;
        var other = new Thread(() => elsewhere = InlineContinuations.CanKeep);
        other.Start();
        other.Join();
        Assert.That(elsewhere, Is.False);
        Assert.That(InlineContinuations.RunKept(), Is.False);
    }

    [Test]
    public void A_scope_inside_a_scope_is_refused_and_the_outer_ones_continuation_still_runs()
    {
        var ran = false;
        using (var keep = InlineContinuations.KeepOne())
        {
            InlineContinuations.TryKeep(() => ran = true);
            Assert.Throws<InvalidOperationException>(() => InlineContinuations.KeepOne());
            Assert.That(ran, Is.False);
        }

        Assert.That(ran, Is.True, "not dropped by the refused inner scope");
    }
}
