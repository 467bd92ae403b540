using System.Collections.Concurrent;
using Interceptor.Core.Threading;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Interceptor.Tests.Store;

namespace Interceptor.Tests.Core.Threading;

/// <summary>
/// The store's writer is a helper thread (<see cref="HelperThreads"/>): it asks, first thing, to yield on waking, and with
/// the daemon's setter (SCHED_BATCH) runs so from then on. The store's checkpointer and the log writer are not.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class HelperThreadsTests
{
    [TearDown]
    public void NoSetter() => HelperThreads.YieldOnWakeWith(null);

    [Test]
    public async Task The_stores_writer_runs_as_a_batch_thread_once_the_daemon_says_how_and_its_checkpointer_does_not()
    {
        var threads = RecordAndSetBatch();

        using var directory = new StoreTestDirectory();
        await using var store = directory.Open();
        for (var i = 0; i < 100 && !threads.ContainsKey("state-store-writer"); i++)
        {
            await Task.Delay(10);
        }

        Assert.That(threads.Keys, Does.Contain("state-store-writer"));
        Assert.That(ThreadSchedulingPolicy.Of(threads["state-store-writer"]), Is.EqualTo(ThreadSchedulingPolicy.Batch));
        // The writer waits for the checkpointer's pass while it holds the write lock: that one must not wait for slices.
        Assert.That(threads.Keys, Does.Not.Contain("state-store-checkpoint"));
    }

    [Test]
    public async Task The_log_writer_is_no_helper_thread()
    {
        // Its first write sets up .NET's console, whose native signal thread would inherit the policy.
        var threads = RecordAndSetBatch();
        using var output = new StringWriter();
        using (var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromMilliseconds(1)))
        {
            writer.Append(new System.Text.StringBuilder("line\n"));
            await Task.Delay(100);
        }

        Assert.That(threads.Keys, Does.Not.Contain("log writer"));
    }

    [Test]
    public void A_setter_that_throws_leaves_the_thread_as_it_was()
    {
        HelperThreads.YieldOnWakeWith(() => throw new EntryPointNotFoundException("sched_setscheduler"));
        var yields = true;
        var thread = new Thread(() => yields = HelperThreads.Started());
        thread.Start();
        thread.Join();
        Assert.That(yields, Is.False);
    }

    private static ConcurrentDictionary<string, int> RecordAndSetBatch()
    {
        var threads = new ConcurrentDictionary<string, int>();
        HelperThreads.YieldOnWakeWith(() =>
        {
            // Recorded once the policy is set: the test reads it as soon as the thread is in the dictionary (it once read
            // SCHED_OTHER, recorded before the set).
            var set = ThreadSchedulingPolicy.TrySetBatch();
            threads[Thread.CurrentThread.Name ?? "?"] = ThreadSchedulingPolicy.CurrentThreadId();
            return set;
        });
        return threads;
    }
}
