using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <summary>SCHED_BATCH for the calling thread alone, unprivileged, and not passed on to the managed threads it starts.</summary>
[TestFixture]
public sealed class ThreadSchedulingPolicyTests
{
    [Test]
    public void A_thread_made_batch_is_batch_alone_and_the_threads_it_starts_are_not()
    {
        var (set, self, child, creator) = (false, -1, -1, ThreadSchedulingPolicy.CurrentThreadId());
        var thread = new Thread(() =>
        {
            set = ThreadSchedulingPolicy.TrySetBatch();
            self = ThreadSchedulingPolicy.Of(ThreadSchedulingPolicy.CurrentThreadId());
            var started = new Thread(() => child = ThreadSchedulingPolicy.Of(ThreadSchedulingPolicy.CurrentThreadId()));
            started.Start();
            started.Join();
        });
        thread.Start();
        thread.Join();

        Assert.Multiple(() =>
        {
            Assert.That(set, Is.True, "no privilege needed");
            Assert.That(self, Is.EqualTo(ThreadSchedulingPolicy.Batch));
            Assert.That(child, Is.EqualTo(ThreadSchedulingPolicy.Other), "a managed thread it starts runs as usual (.NET sets the policy explicitly)");
            Assert.That(ThreadSchedulingPolicy.Of(creator), Is.EqualTo(ThreadSchedulingPolicy.Other), "the thread that started it is unchanged");
        });
    }

    [Test]
    public void The_policy_of_a_thread_that_does_not_exist_is_minus_one() =>
        Assert.That(ThreadSchedulingPolicy.Of(int.MaxValue), Is.EqualTo(-1));
}
