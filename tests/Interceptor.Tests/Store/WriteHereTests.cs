using System.Diagnostics;
using Interceptor.Core.Events;
using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

/// <summary>
/// A Pending row is committed on its caller's thread when the writer is idle (issue 19, added latency): the task is
/// complete when the call returns, so the session goes on without two thread wake-ups. The caller's thread never waits
/// for another process's lock, and the writer still checkpoints what was written this way.
/// </summary>
[TestFixture]
public class WriteHereTests
{
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private static TransactionEvent Pending(string id) => Records.Transaction(id, Records.Base, outcome: TransactionOutcome.Pending);

    // The daemon's setting except that a write may follow the last commit at once.
    private static readonly StoreTuning NoQuiet = StoreTuning.Default with { QuietBeforeWritingHere = TimeSpan.Zero };

    [Test]
    public async Task An_idle_writer_lets_the_caller_commit_its_row_before_the_call_returns()
    {
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        var here = store.WrittenHereCount;
        await Task.Delay(StoreTuning.Default.QuietBeforeWritingHere * 5);

        var write = store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);

        Assert.That(write.IsCompletedSuccessfully, "committed on this thread, not handed to the writer thread");
        Assert.That(store.WrittenHereCount, Is.EqualTo(here + 1));
        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);
        Assert.That(rows.Select(r => (r.Id, r.Outcome)), Does.Contain(("t1", TransactionOutcome.Pending)));
    }

    [Test]
    public async Task Writes_following_each_other_closely_go_through_the_writer_where_they_share_commits()
    {
        // Under load a commit per row costs CPU; the queue lets one commit carry many. Back to back here, and spaced.
        const int writes = 100;
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        var before = store.WrittenHereCount;
        for (var i = 0; i < writes; i++)
        {
            await store.RecordTransactionAsync(Pending("close" + i), CancellationToken.None);
        }

        var closeHere = store.WrittenHereCount - before;
        before = store.WrittenHereCount;
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(StoreTuning.Default.QuietBeforeWritingHere * 3);
            await store.RecordTransactionAsync(Pending("spaced" + i), CancellationToken.None);
        }

        var spacedHere = store.WrittenHereCount - before;
        Assert.That(closeHere, Is.LessThan(writes / 2), "writes back to back were committed one by one on their callers' thread");
        Assert.That(spacedHere, Is.GreaterThanOrEqualTo(8), "spaced writes went through the writer thread");
    }

    [Test]
    public async Task Switched_off_every_write_goes_through_the_writer_thread()
    {
        await using var store = _dir.Open(StoreTuning.Default with { WriteHereWhenIdle = false });

        var write = store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        await write;

        Assert.That(store.WrittenHereCount, Is.Zero);
    }

    [Test]
    public async Task Another_process_holding_the_write_lock_sends_the_write_to_the_queue_without_waiting_here()
    {
        await using var store = _dir.Open(NoQuiet);
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        var here = store.WrittenHereCount;
        await using var other = new SqliteConnection($"Data Source={_dir.Database}");
        await other.OpenAsync();
        await using (var begin = other.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE;";
            await begin.ExecuteNonQueryAsync();
        }

        var clock = Stopwatch.StartNew();
        var write = store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var returnedAfter = clock.Elapsed;

        // The busy timeout is 5 s: a caller's thread (a socket thread in the daemon) must not spend it waiting.
        Assert.That(returnedAfter, Is.LessThan(TimeSpan.FromSeconds(1)), "the call waited for the other process's lock");
        Assert.That(write.IsCompleted, Is.False, "nothing can be committed while another process holds the write lock");
        Assert.That(store.WrittenHereCount, Is.EqualTo(here));
        await using (var commit = other.CreateCommand())
        {
            commit.CommandText = "COMMIT;";
            await commit.ExecuteNonQueryAsync();
        }

        await write;
        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);
        Assert.That(rows.Select(r => r.Id), Does.Contain("t1"), "the writer committed it once the lock was free");
    }

    [Test]
    public async Task The_writer_checkpoints_what_callers_committed_so_the_wal_stays_small()
    {
        // Callers' commits run with SQLite's automatic checkpoint off (it fsyncs in the committing thread); without the
        // writer's checkpoints the WAL would grow by every row's pages, ~16 KB each here.
        const int writes = 1500;
        await using var store = _dir.Open(NoQuiet);
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        var here = store.WrittenHereCount;

        for (var i = 0; i < writes; i++)
        {
            await store.RecordTransactionAsync(Pending("t" + i), CancellationToken.None);
        }

        var wal = new FileInfo(_dir.Database + "-wal").Length;
        TestContext.Out.WriteLine($"{store.WrittenHereCount - here} of {writes} rows committed by their callers ({store.SlowWritesHereCount} slow); WAL {wal / 1024} KiB");
        Assert.That(store.WrittenHereCount - here, Is.GreaterThan(writes * 9 / 10), "an idle writer lets (almost) every caller write");
        Assert.That(wal, Is.LessThan(writes * 4096L), "the WAL grew with every row: nothing checkpointed it");
    }
}
