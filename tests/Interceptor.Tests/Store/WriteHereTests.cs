using System.Diagnostics;
using Interceptor.Core.Events;
using Interceptor.Core.Threading;
using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

/// <summary>
/// A Pending row is committed on its caller's thread when the writer is idle (issue 19, added latency): the task is
/// complete when the call returns, so the session goes on without two thread wake-ups. The caller's thread never waits
/// for another process's lock, and what was written this way is checkpointed too.
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

    // The daemon's setting except that a write may follow the last commit at once, and no commit counts as slow (the
    // first ones in a test process compile their code: the pause would take every later write in the test).
    private static readonly StoreTuning NoQuiet = StoreTuning.Default with { QuietBeforeWritingHere = TimeSpan.Zero, SlowWriteHere = TimeSpan.FromMinutes(1) };

    private static readonly StoreTuning NeverSlow = StoreTuning.Default with { SlowWriteHere = TimeSpan.FromMinutes(1) };

    [Test]
    public async Task An_idle_writer_lets_the_caller_commit_its_row_before_the_call_returns()
    {
        await using var store = _dir.Open(NeverSlow);
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
        await using var store = _dir.Open(NeverSlow);
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
        Assert.That(spacedHere, Is.GreaterThanOrEqualTo(8), "spaced writes were not committed by their callers");
    }

    [Test]
    public async Task A_slow_commit_sends_the_next_writes_to_the_writer_for_a_while()
    {
        // Every commit counts as slow here: the first one made by its caller pauses the callers' commits.
        await using var store = _dir.Open(NoQuiet with { SlowWriteHere = TimeSpan.Zero });
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        await store.RecordTransactionAsync(Pending("appends"), CancellationToken.None);
        var here = store.WrittenHereCount;

        for (var i = 0; i < 20; i++)
        {
            await store.RecordTransactionAsync(Pending("paused" + i), CancellationToken.None);
        }

        Assert.That(here, Is.EqualTo(1), "the first commit made by its caller");
        Assert.That(store.SlowWritesHereCount, Is.EqualTo(1));
        Assert.That(store.WrittenHereCount, Is.EqualTo(here), "paused: every later write went through the writer");
    }

    [Test]
    public async Task A_demoted_threads_write_goes_through_the_writer_even_when_it_is_idle()
    {
        // The commit holds the database's write lock; at a flood's nice value, preempted, it would hold everyone's.
        await using var store = _dir.Open(NoQuiet);
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        var here = store.WrittenHereCount;

        // The call on a thread of its own, marked demoted for the call only. A commit here is counted before the call
        // returns (whether the task is already complete says nothing: the idle writer may have finished it meanwhile).
        var (committedHere, write) = await Task.Factory.StartNew(() =>
        {
            ThreadDemotion.Mark(true);
            try
            {
                var write = store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
                return (store.WrittenHereCount != here, write);
            }
            finally
            {
                ThreadDemotion.Mark(false);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        await write;

        Assert.That(committedHere, Is.False, "handed to the writer thread");
        Assert.That(store.WrittenHereCount, Is.EqualTo(here));
        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);
        Assert.That(rows.Select(r => r.Id), Does.Contain("t1"));
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
    public async Task What_callers_committed_is_checkpointed_so_the_wal_stays_small()
    {
        // Commits run with SQLite's automatic checkpoint off (it fsyncs in the committing thread); without the
        // checkpointer the WAL would grow by every row's pages, ~16 KB each here (64 MB). With it, by what is committed
        // during its passes, up to 8 thresholds (then callers' rows go to the writer, whose short pass ends the WAL):
        // 3 MB here at 100 pages, whatever the disk's speed.
        const int writes = 4000;
        await using var store = _dir.Open(NoQuiet with { CheckpointPages = 100 });
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

    [Test]
    public async Task The_commit_that_restarts_the_wal_after_a_full_checkpoint_is_left_to_the_writer()
    {
        // SQLite fsyncs a restarted WAL's header even with synchronous=NORMAL: not on a caller's (socket) thread.
        await using var store = _dir.Open(NoQuiet);
        await store.RecordTransactionAsync(Pending("warm"), CancellationToken.None);
        await store.RecordTransactionAsync(Pending("appends"), CancellationToken.None);
        var here = store.WrittenHereCount;
        Assert.That(here, Is.GreaterThan(0), "a write that only appends is committed by its caller");
        await using (var other = new SqliteConnection($"Data Source={_dir.Database}"))
        {
            await other.OpenAsync();
            await using var checkpoint = other.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
            await checkpoint.ExecuteNonQueryAsync();
        }

        await store.RecordTransactionAsync(Pending("restarts"), CancellationToken.None);
        Assert.That(store.WrittenHereCount, Is.EqualTo(here), "every frame was checkpointed: the next commit restarts the WAL, on the writer's thread");
        await store.RecordTransactionAsync(Pending("appends again"), CancellationToken.None);
        Assert.That(store.WrittenHereCount, Is.EqualTo(here + 1), "once restarted, callers commit again");
    }

    [Test]
    public async Task A_deferred_outcome_is_committed_on_time_after_a_callers_commit_took_the_previous_one_along()
    {
        // The writer sleeps without a deadline and a deferred write arms a timer once; a caller's commit that took the
        // deferred write along must not leave the next one without a timer (review of the change).
        await using var store = _dir.Open(NoQuiet with { DeferredCommitDelay = TimeSpan.FromMilliseconds(50) });
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        await store.RecordTransactionAsync(Pending("t1b"), CancellationToken.None);
        var first = store.RecordOutcomeDeferred(Records.Transaction("t1", Records.Base, outcome: TransactionOutcome.Delivered));
        var here = store.WrittenHereCount;
        await store.RecordTransactionAsync(Pending("t2"), CancellationToken.None);
        Assert.That(store.WrittenHereCount, Is.EqualTo(here + 1), "the setting under test: t2 committed by its caller");
        Assert.That(first.IsCompletedSuccessfully, "the caller's commit took the waiting outcome along");
        await Task.Delay(300);

        var second = store.RecordOutcomeDeferred(Records.Transaction("t2", Records.Base, outcome: TransactionOutcome.Delivered));

        Assert.That(await Task.WhenAny(second, Task.Delay(TimeSpan.FromSeconds(10))), Is.SameAs(second), "the outcome waited for another write");
        await second;
    }
}
