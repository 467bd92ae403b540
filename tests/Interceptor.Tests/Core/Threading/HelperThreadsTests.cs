using System.Collections.Concurrent;
using Interceptor.Core.Threading;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Interceptor.Tests.Store;

namespace Interceptor.Tests.Core.Threading;

/// <summary>
/// The store's writer and checkpointer and the log writer are helper threads (<see cref="HelperThreads"/>): each asks,
/// first thing, to yield on waking, and with the daemon's setter (SCHED_BATCH) runs so from then on.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class HelperThreadsTests
{
    [TearDown]
    public void NoSetter() => HelperThreads.YieldOnWakeWith(null);

    [Test]
    public async Task The_stores_writer_and_checkpointer_run_as_batch_threads_once_the_daemon_says_how()
    {
        var threads = RecordAndSetBatch();

        using var directory = new StoreTestDirectory();
        await using var store = directory.Open();
        for (var i = 0; i < 100 && threads.Count < 2; i++)
        {
            await Task.Delay(10);
        }

        Assert.That(threads.Keys, Is.SupersetOf(new[] { "state-store-writer", "state-store-checkpoint" }));
        Assert.Multiple(() =>
        {
            Assert.That(ThreadSchedulingPolicy.Of(threads["state-store-writer"]), Is.EqualTo(ThreadSchedulingPolicy.Batch));
            Assert.That(ThreadSchedulingPolicy.Of(threads["state-store-checkpoint"]), Is.EqualTo(ThreadSchedulingPolicy.Batch));
        });
    }

    [Test]
    public async Task The_log_writer_runs_as_a_batch_thread_once_the_daemon_says_how()
    {
        var threads = RecordAndSetBatch();
        using var output = new StringWriter();
        using var writer = new ConsoleLineWriter(() => output, linger: TimeSpan.FromMilliseconds(1));
        for (var i = 0; i < 100 && !threads.ContainsKey("log writer"); i++)
        {
            await Task.Delay(10);
        }

        Assert.That(threads.Keys, Does.Contain("log writer"));
        Assert.That(ThreadSchedulingPolicy.Of(threads["log writer"]), Is.EqualTo(ThreadSchedulingPolicy.Batch));
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
            threads[Thread.CurrentThread.Name ?? "?"] = ThreadSchedulingPolicy.CurrentThreadId();
            return ThreadSchedulingPolicy.TrySetBatch();
        });
        return threads;
    }
}
