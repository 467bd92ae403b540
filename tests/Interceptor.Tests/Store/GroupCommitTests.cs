using System.Diagnostics;
using Interceptor.Store;

namespace Interceptor.Tests.Store;

[TestFixture]
public class GroupCommitTests
{
    private const int Writes = 2000;

    /// <summary>SMTPI_STORE_BENCH_DIR points the measurement at another disk (e.g. /var/lib); temp otherwise.</summary>
    private static string? BenchParent => Environment.GetEnvironmentVariable("SMTPI_STORE_BENCH_DIR");

    [Test]
    public async Task Concurrent_writes_all_complete_and_share_few_commits()
    {
        using var dir = new StoreTestDirectory(BenchParent);
        await using var store = dir.Open();

        var (elapsed, commits) = await WriteConcurrently(store, Writes);
        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, Writes * 2, CancellationToken.None);

        Assert.That(rows, Has.Count.EqualTo(Writes));
        Assert.That(rows.Select(r => r.Id).Distinct().Count(), Is.EqualTo(Writes));
        Assert.That(commits, Is.LessThan(Writes), "writes that queue up together must share a commit");
        TestContext.Out.WriteLine(
            $"group commit under {Path.GetDirectoryName(dir.Path)}: {Writes} concurrent writes in {elapsed.TotalMilliseconds:F0} ms, " +
            $"{commits} commits (~{(double)Writes / commits:F0} rows each), {Writes / elapsed.TotalSeconds:F0} rows/s");
    }

    [Test]
    public async Task Sustained_load_from_many_sessions_is_batched()
    {
        // Closer to the daemon: many sessions, each waiting for its write before it sends the next.
        const int sessions = 200;
        const int perSession = 50;
        using var dir = new StoreTestDirectory(BenchParent);
        await using var store = dir.Open();
        var before = store.CommitCount;
        var clock = Stopwatch.StartNew();

        await Task.WhenAll(Enumerable.Range(0, sessions).Select(s => Task.Run(async () =>
        {
            for (var i = 0; i < perSession; i++)
            {
                await store.RecordTransactionAsync(Records.Transaction($"s{s}-{i}", Records.Base.AddSeconds(i), uid: 1000 + (uint)s), CancellationToken.None);
            }
        })));

        var elapsed = clock.Elapsed;
        var commits = store.CommitCount - before;
        Assert.That(await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, sessions * perSession * 2, CancellationToken.None), Has.Count.EqualTo(sessions * perSession));
        TestContext.Out.WriteLine(
            $"sustained group commit under {Path.GetDirectoryName(dir.Path)}: {sessions} sessions x {perSession} writes in {elapsed.TotalMilliseconds:F0} ms, " +
            $"{commits} commits (~{(double)sessions * perSession / commits:F0} rows each), {sessions * perSession / elapsed.TotalSeconds:F0} rows/s");
    }

    [Test]
    public async Task One_commit_per_write_for_comparison()
    {
        const int writes = 300;
        using var dir = new StoreTestDirectory(BenchParent);
        await using var store = dir.Open(StoreTuning.Default with { MaxBatch = 1 });

        var (elapsed, commits) = await WriteConcurrently(store, writes);

        Assert.That(commits, Is.EqualTo(writes));
        TestContext.Out.WriteLine(
            $"one commit per row under {Path.GetDirectoryName(dir.Path)}: {writes} concurrent writes in {elapsed.TotalMilliseconds:F0} ms, " +
            $"{writes / elapsed.TotalSeconds:F0} rows/s");
    }

    [Test]
    public async Task Dispose_drains_queued_writes_before_closing()
    {
        using var dir = new StoreTestDirectory();
        var store = dir.Open();
        var pending = Enumerable.Range(0, 500)
            .Select(i => store.RecordTransactionAsync(Records.Transaction($"d{i}", Records.Base.AddSeconds(i)), CancellationToken.None))
            .ToList();

        await store.DisposeAsync();

        Assert.That(pending.All(t => t.IsCompletedSuccessfully));
        await using var reopened = dir.Open();
        Assert.That(await reopened.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 1000, CancellationToken.None), Has.Count.EqualTo(500));
    }

    [Test]
    public async Task A_full_queue_makes_writers_wait_and_then_get_through()
    {
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open(StoreTuning.Default with { MaxBatch = 16, QueueCapacity = 8 });

        var (_, commits) = await WriteConcurrently(store, 400);

        Assert.That(commits, Is.GreaterThanOrEqualTo(400 / 16));
        Assert.That(await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 1000, CancellationToken.None), Has.Count.EqualTo(400));
    }

    private static async Task<(TimeSpan Elapsed, long Commits)> WriteConcurrently(SqliteStateStore store, int count)
    {
        var before = store.CommitCount;
        var events = Enumerable.Range(0, count).Select(i => Records.Transaction($"c{i}", Records.Base.AddMilliseconds(i), uid: 1000 + (uint)(i % 50))).ToList();
        var clock = Stopwatch.StartNew();
        // Task.Run: each write starts on its own pool thread, as sessions would, instead of in one loop.
        await Task.WhenAll(events.Select(e => Task.Run(() => store.RecordTransactionAsync(e, CancellationToken.None))));
        return (clock.Elapsed, store.CommitCount - before);
    }
}
