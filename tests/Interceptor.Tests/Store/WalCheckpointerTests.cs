using Interceptor.Core.Events;
using Interceptor.Core.Threading;
using Interceptor.Store;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Store;

/// <summary>
/// Checkpoints beside the writer (<see cref="WalCheckpointer"/>): a commit never waits for one, SQLite's own checkpoint
/// in the committing connection is off, and under a steady stream of commits the WAL still comes back to its start.
/// </summary>
[TestFixture]
public class WalCheckpointerTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private static TransactionEvent Row(string id) => Records.Transaction(id, Records.Base, outcome: TransactionOutcome.Pending);

    private static readonly StoreTuning SmallWal = StoreTuning.Default with { CheckpointPages = 50 };

    [Test]
    public async Task Commits_go_on_while_a_checkpoint_is_under_way()
    {
        await using var store = _dir.Open(SmallWal);
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        store.Checkpointer.BeforePassBesideWriter = () =>
        {
            entered.Set();
            release.Wait(Patience);
        };

        // Rows until the WAL passes the threshold and the checkpoint thread stops inside its pass.
        var written = 0;
        try
        {
            while (!entered.IsSet && written < 10_000)
            {
                await store.RecordTransactionAsync(Row("fill" + written++), CancellationToken.None);
            }

            Assert.That(entered.Wait(Patience), Is.True, $"no checkpoint began after {written} rows of a 50-page threshold");

            // The writer and the callers' own commits go on; with the checkpoint in the committing thread (or under the
            // writer's lock) these would wait for the release below, which comes only after them.
            var during = Enumerable.Range(0, 50).Select(i => store.RecordTransactionAsync(Row("during" + i), CancellationToken.None)).ToArray();
            var all = Task.WhenAll(during);
            Assert.That(await Task.WhenAny(all, Task.Delay(Patience)), Is.SameAs(all), "a commit waited for the checkpoint");
            Assert.That(store.Checkpointer.Passes, Is.Zero, "the pass had not run yet");
        }
        finally
        {
            release.Set();
        }

        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 20_000, CancellationToken.None);
        Assert.That(rows, Has.Count.EqualTo(written + 50));
    }

    [Test]
    public async Task A_batch_is_answered_before_the_writers_own_pass_after_it()
    {
        // The writer's pass may wait for the checkpoint thread's and then copy and fsync: the rows of the batch before it
        // are on disk already, and a client waiting for one (a Pending row before its 354) must not wait for that too.
        await using var store = _dir.Open(SmallWal with { WriteHereWhenIdle = false });
        var rows = new List<Task>();
        var before = store.CommitCount;
        var atPasses = new List<(long Committed, int Answered)>();
        store.Checkpointer.BeforeWritersPass = () =>
        {
            lock (rows)
            {
                // One row a batch (each awaited before the next): every batch committed so far has its row answered.
                atPasses.Add((store.CommitCount - before, rows.Count(r => r.IsCompleted)));
            }
        };

        // A session's steps (its user alone): a row's task completes where the writer settles it, not after a pool hop,
        // so the hook sees exactly which rows were answered.
        await Task.Run(async () =>
        {
            StepLanes.Current = new RecordingStepLane { GoOn = true };
            for (var i = 0; i < 2_000 && atPasses.Count < 5; i++)
            {
                Task row;
                lock (rows)
                {
                    row = store.RecordTransactionAsync(Row("fill" + i), CancellationToken.None);
                    rows.Add(row);
                }

                await row;
            }
        });

        Assert.That(atPasses, Is.Not.Empty, "the writer made no pass of its own");
        Assert.That(atPasses.Select(p => p.Answered), Is.EqualTo(atPasses.Select(p => (int)p.Committed)),
            "rows committed but not answered when the writer's pass began: " + string.Join(", ", atPasses));
    }

    [Test]
    public async Task A_reader_holding_an_old_snapshot_does_not_start_a_checkpoint_at_every_commit()
    {
        // Frames after the reader's snapshot cannot be copied while it reads (an admin's sqlite3 shell left open): the
        // WAL stays above the threshold, and without a pause every commit would start four passes and a writer's pass.
        await using var store = _dir.Open(SmallWal);
        await store.RecordTransactionAsync(Row("before"), CancellationToken.None);
        await using var reader = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_dir.Database};Mode=ReadOnly");
        await reader.OpenAsync();
        await using var begin = reader.CreateCommand();
        begin.CommandText = "BEGIN; SELECT count(*) FROM transactions;";
        await begin.ExecuteScalarAsync();

        const int writes = 400;
        for (var i = 0; i < writes; i++)
        {
            await store.RecordTransactionAsync(Row("held" + i), CancellationToken.None);
        }

        var passes = store.Checkpointer.Passes;
        TestContext.Out.WriteLine($"{writes} commits, WAL {store.WalFrames} frames, {passes} passes");
        Assert.That(store.WalFrames, Is.GreaterThan(2 * 50u), "the reader held no frames back; the test proves nothing");
        Assert.That(passes, Is.LessThan(writes / 10), "a checkpoint started at (nearly) every commit");
    }

    [Test]
    public async Task The_writers_connection_never_checkpoints_by_itself()
    {
        await using var store = _dir.Open();
        var automatic = await store.RunOnWriterAsync(c => Schema.Scalar(c, "PRAGMA wal_autocheckpoint;"));
        Assert.That(Convert.ToInt32(automatic, System.Globalization.CultureInfo.InvariantCulture), Is.Zero,
            "SQLite's automatic checkpoint would fsync in the committing thread, holding every user's commit");
    }

    [TestCase(false, TestName = "Under_a_steady_stream_of_commits_the_wal_comes_back_to_its_start")]
    [TestCase(true, TestName = "Under_a_steady_stream_of_commits_the_wal_comes_back_to_its_start_when_every_request_to_the_writer_is_lost")]
    public async Task Steady_stream(bool requestsLost)
    {
        // Four writers never let the WAL be idle, so a pass beside them always leaves what arrived during it; only the
        // writer's own short pass lets a commit find every frame copied and restart the WAL instead of appending forever
        // (without it: a WAL of 100–250 MB after these 3 s, restarted only when a pass happened to see no commit).
        // Lost requests (a full queue drops them; a new round makes the writer's pass BUSY) leave the writer's own look at
        // the WAL's length: without it, a lost request is never made up for under a flood.
        await using var store = _dir.Open(SmallWal);
        store.DropFinishRequests = requestsLost;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        long largest = 0;
        var rows = 0;
        var restarts = 0;

        async Task WriteAsync(int writer)
        {
            for (var i = 0; DateTime.UtcNow < until; i++)
            {
                await store.RecordTransactionAsync(Row($"w{writer}-{i}"), CancellationToken.None);
                Interlocked.Increment(ref rows);
            }
        }

        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(() => WriteAsync(w))).ToArray();
        var lastFrame = 0u;
        while (!writers.All(w => w.IsCompleted))
        {
            // mxFrame in the WAL-index header (WalIndex): it falls only when a commit restarts the WAL.
            var frame = store.WalFrames;
            restarts += frame < lastFrame ? 1 : 0;
            lastFrame = frame;
            largest = Math.Max(largest, new FileInfo(_dir.Database + "-wal").Length);
            await Task.Delay(2);
        }

        await Task.WhenAll(writers);
        var checkpointer = store.Checkpointer;
        TestContext.Out.WriteLine($"{rows} rows, {checkpointer.Passes} passes ({checkpointer.FinishesAsked} finishes asked, {store.FinishedCheckpoints} made by the writer), {restarts} WAL restarts seen, largest WAL {largest / 1024} KiB");
        Assert.That(store.FinishedCheckpoints, Is.GreaterThan(0), "the writer never copied what came during the passes");
        Assert.That(restarts, Is.GreaterThanOrEqualTo(3), "the WAL kept growing: no commit found every frame copied");
        // Bounded by what is committed during a few passes (4 MB here); the store's journal_size_limit is 64 MB.
        Assert.That(largest, Is.LessThan(64L * 1024 * 1024), "the WAL grew with every row between restarts");
        var stored = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, rows + 10, CancellationToken.None);
        Assert.That(stored, Has.Count.EqualTo(rows));
    }
}
