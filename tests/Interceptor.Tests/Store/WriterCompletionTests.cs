using Interceptor.Core.Threading;

namespace Interceptor.Tests.Store;

/// <summary>
/// The writer never lets a session's step run on its thread: it posts completions without saying it holds nothing
/// (InlineContinuations.Allow), so a session's scheduler queues them for its pumps. A step run on the writer could go on
/// for as long as its client keeps it busy, and every user's commits would wait (review of the inline change).
/// </summary>
[TestFixture]
public class WriterCompletionTests
{
    [Test]
    public async Task A_write_awaited_under_a_context_is_posted_back_by_the_writer_thread_without_leave_to_run_it_there()
    {
        using var dir = new StoreTestDirectory(null);
        // Every write through the writer: one made on the test's thread (the writer idle) would post nothing at all.
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var context = new RecordingContext();

        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        Task awaited;
        try
        {
            // Several at once: a single write can be committed before its await looks (then nothing is posted at all).
            awaited = Task.WhenAll(Enumerable.Range(0, 20).Select(i => AwaitWrite(store, i)));
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        await awaited;
        // (The awaits around the store's own, resumed on the pool, post too: only the writer's posts matter here.)
        var byWriter = context.Posts.Where(p => p.Thread == "state-store-writer").ToList();
        Assert.That(byWriter, Is.Not.Empty);
        Assert.That(byWriter.Select(p => p.HoldingNothing), Is.All.False, "the writer gives no leave to run a session's step on its thread");
        Assert.That(InlineContinuations.Allowed, Is.False);
    }

    private static async Task AwaitWrite(Interceptor.Store.SqliteStateStore store, int i) =>
        await store.RecordTransactionAsync(Records.Transaction("t" + i, Records.Base, uid: 1000), CancellationToken.None);

    /// <summary>Notes who posted and whether they held nothing, then runs the continuation on the thread pool.</summary>
    private sealed class RecordingContext : SynchronizationContext
    {
        public List<(string? Thread, bool HoldingNothing)> Posts { get; } = [];

        public override void Post(SendOrPostCallback d, object? state)
        {
            lock (Posts)
            {
                Posts.Add((Thread.CurrentThread.Name, InlineContinuations.Allowed));
            }

            ThreadPool.QueueUserWorkItem(_ => d(state));
        }
    }
}
