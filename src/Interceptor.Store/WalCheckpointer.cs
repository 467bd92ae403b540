using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SQLitePCL;

namespace Interceptor.Store;

/// <summary>
/// Moves the WAL's pages into the database on a thread and connection of its own, so that commits go on meanwhile. A
/// checkpoint fsyncs the WAL, copies its pages and fsyncs the database: 7–40 ms on the benchmark's machine (strace of the
/// writer's thread, which slows it) while one user's flood fills 1,000 pages every half second. Run by the committing connection (SQLite's automatic checkpoint,
/// as before), it held every user's commit for that long: another user's Pending row, and with it that user's DATA,
/// waited behind it (tests/bench/run, X's raised-limit flood: Y's DATA step p99 16.7 ms, max 20 ms).
/// </summary>
/// <remarks>
/// WAL mode lets a checkpoint run beside a writer (SQLite's locks for the two differ), but the WAL restarts from its
/// start only when a commit finds every frame copied, and under a flood frames arrive during every pass: the file would
/// grow without end. So passes repeat while frames keep coming, and the last few are copied by the writer's thread
/// between two batches (<c>finishOnWriter</c>): a short pass (few pages, two small fsyncs) instead of the whole one. After
/// it the writer's next commit restarts the WAL (<see cref="WalIndex"/>: on the writer's thread). Not by taking the
/// writer's lock from here: a caller committing its own rows back to back takes it again before a waiting thread wakes.
/// A failed pass is logged and tried again at the next threshold, as SQLite's own would be; the WAL grows meanwhile.
/// </remarks>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>Frames left after a pass that another pass beside the writer is not worth: the writer copies them.</summary>
    internal const uint FewFrames = 64;

    // Passes beside the writer before it copies the rest whatever its size: under a steady flood each pass
    // leaves what arrived during it, and the WAL must come back to its start at some point.
    private const int PassesBeforeFinishing = 4;

    // After a failed round, or one that copied nothing and left the WAL above the threshold (a reader holding an old
    // snapshot: an admin's open sqlite3 shell), the next waits this long instead of starting again at every commit. Not
    // after a round that copied frames: under a flood the WAL would grow by a second of it.
    private static readonly TimeSpan Backoff = TimeSpan.FromSeconds(1);

    private readonly SqliteConnection _connection;
    private readonly WalIndex _walIndex;
    private readonly Action _finishOnWriter;
    private readonly uint _threshold;

    // WAL frames since its last restart past which the writer makes its short pass without being asked (WalRunsLong).
    private const uint RunsLongThresholds = 8;
    private readonly ILogger _logger;
    // Held for each pass, this thread's or the writer's: the writer waits for one in progress only when the WAL runs long.
    private readonly Lock _passGate = new();
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
    private readonly Thread _thread;
    private volatile bool _stopping;
    private int _requested;
    private long _passes;
    private long _finishesAsked;
    private long _notBefore;
    // Read and written by this thread and the writer's (PassOn): at worst a failure is logged twice.
    private volatile bool _failing;

    /// <param name="connectionString">The same database as the writer's connection, opened for writing.</param>
    /// <param name="finishOnWriter">Asks the writer's thread for one pass between its batches (the last few frames).</param>
    /// <param name="thresholdPages">Frames not yet copied that start a checkpoint (SQLite's wal_autocheckpoint).</param>
    public WalCheckpointer(string connectionString, WalIndex walIndex, Action finishOnWriter, int thresholdPages, ILogger logger)
    {
        _connection = new SqliteConnection(connectionString);
        try
        {
            _connection.Open();
            // A checkpoint by a connection in NORMAL fsyncs the WAL before it copies and the database after: what the
            // writer's own checkpoint did.
            Schema.Execute(_connection, "PRAGMA synchronous = NORMAL;");
        }
        catch
        {
            // Closed now, not by a finalizer after the store's file guards (closing a descriptor drops the process's locks).
            _connection.Dispose();
            throw;
        }

        _walIndex = walIndex;
        _finishOnWriter = finishOnWriter;
        _threshold = (uint)Math.Max(1, thresholdPages);
        _logger = logger;
        _thread = new Thread(Run) { IsBackground = true, Name = "state-store-checkpoint" };
        _thread.Start();
    }

    /// <summary>The checkpointer's connection: the database file for writing (never created: the writer's exists).</summary>
    public static string ConnectionStringFor(string path) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = SqliteOpenMode.ReadWrite,
        Pooling = false,
        DefaultTimeout = Schema.BusyTimeoutMilliseconds / 1000,
    }.ToString();

    /// <summary>Passes run (each a sqlite3_wal_checkpoint), for tests and the trace log.</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Times the writer's thread was asked to copy what arrived during the passes beside it.</summary>
    public long FinishesAsked => Interlocked.Read(ref _finishesAsked);

    /// <summary>Test hook: runs on the checkpoint thread right before each pass beside the writer.</summary>
    internal Action? BeforePassBesideWriter { get; set; }

    /// <summary>Test hook: runs on the writer's thread as it starts its own pass (<see cref="PassOn(SqliteConnection, bool)"/>).</summary>
    internal Action? BeforeWritersPass { get; set; }

    /// <summary>
    /// After a commit: wakes the thread when the WAL holds <c>thresholdPages</c> frames not yet copied. One read of the
    /// -shm header; nothing when a checkpoint is already asked for.
    /// </summary>
    public void AfterCommit()
    {
        if (Volatile.Read(ref _requested) != 0 || Environment.TickCount64 < Volatile.Read(ref _notBefore) ||
            _walIndex.FramesNotCheckpointed() < _threshold)
        {
            return;
        }

        Request();
    }

    private void Request()
    {
        if (Interlocked.Exchange(ref _requested, 1) == 0)
        {
            _wake.Set();
        }
    }

    private void Run()
    {
        // Not a helper thread that yields on waking (HelperThreads): while the WAL runs long the store's writer holds the
        // write lock and waits for this pass, whose fsyncs wake it several times; none of those wake-ups may wait for a slice.
        while (true)
        {
            _wake.Wait();
            _wake.Reset();
            if (_stopping)
            {
                return;
            }

            try
            {
                Checkpoint();
            }
#pragma warning disable CA1031 // an exception on this thread would end the process; the WAL only grows until the next round
            catch (Exception e)
#pragma warning restore CA1031
            {
                Failed(e.Message);
            }

            // Cleared after the pass: commits during it asked for nothing, and the next threshold is counted from here.
            Volatile.Write(ref _requested, 0);
        }
    }

    private void Checkpoint()
    {
        var started = Stopwatch.GetTimestamp();
        var left = uint.MaxValue;
        var copied = false;
        for (var pass = 0; pass < PassesBeforeFinishing && left > FewFrames && !_stopping; pass++)
        {
            if (!TryPass(out left, ref copied))
            {
                return;
            }
        }

        if (left > 0 && !_stopping)
        {
            Interlocked.Increment(ref _finishesAsked);
            _finishOnWriter();
        }

        _failing = false;
        if (!copied && left >= _threshold)
        {
            // Nothing could be copied: a reader's snapshot holds the frames.
            Volatile.Write(ref _notBefore, Environment.TickCount64 + (long)Backoff.TotalMilliseconds);
        }

        _logger.CheckpointedBesideWriter(Stopwatch.GetElapsedTime(started), left);
    }

    /// <summary>One pass on this thread's connection; <paramref name="left"/>: frames it could not copy yet;
    /// <paramref name="copied"/> set when it copied any.</summary>
    private bool TryPass(out uint left, ref bool copied)
    {
        BeforePassBesideWriter?.Invoke();
        Interlocked.Increment(ref _passes);
        var before = _walIndex.Backfilled();
        bool passed;
        int backfilled;
        lock (_passGate)
        {
            passed = PassOn(_connection, out backfilled);
        }

        if (!passed)
        {
            left = 0;
            return false;
        }

        copied |= backfilled > before;
        // Not from the log and backfilled counts: they count the frames the pass saw when it began, never what commits appended meanwhile.
        left = _walIndex.FramesNotCheckpointed();
        return true;
    }

    /// <summary>
    /// After a batch, on the writer's thread: the WAL has gone <see cref="RunsLongThresholds"/> thresholds without a
    /// restart, so a request to finish was lost or its pass found a new round's checkpoint running (BUSY). The writer
    /// then makes its short pass after every batch until a commit restarts the WAL: one read of the -shm header a batch.
    /// </summary>
    public bool WalRunsLong() => RunsLong(_walIndex.Frames());

    /// <summary>Whether a WAL of <paramref name="frames"/> since its restart is long enough for the writer's own pass (a
    /// caller's commit then goes to the writer, which makes it).</summary>
    public bool RunsLong(uint frames) => frames >= _threshold * RunsLongThresholds;

    /// <summary>The writer's short pass (on its thread and connection, between two batches), failures handled as here.</summary>
    /// <param name="waitForPass">Wait for a pass of this thread's in progress (else SQLite answers BUSY); false: none
    /// made then.</param>
    /// <returns>Whether the pass was made.</returns>
    public bool PassOn(SqliteConnection writerConnection, bool waitForPass)
    {
        BeforeWritersPass?.Invoke();
        if (waitForPass)
        {
            _passGate.Enter();
        }
        else if (!_passGate.TryEnter())
        {
            return false;
        }

        try
        {
            return PassOn(writerConnection, out _);
        }
        finally
        {
            _passGate.Exit();
        }
    }

    /// <summary>One PASSIVE checkpoint on <paramref name="connection"/>; false if it failed (BUSY: another checkpoint
    /// runs, nothing to report).</summary>
    private bool PassOn(SqliteConnection connection, out int backfilled)
    {
        var rc = raw.sqlite3_wal_checkpoint_v2(connection.Handle!, "main", raw.SQLITE_CHECKPOINT_PASSIVE, out _, out backfilled);
        if (rc == raw.SQLITE_OK)
        {
            return true;
        }

        if (rc != raw.SQLITE_BUSY)
        {
            Failed(raw.sqlite3_errstr(rc).utf8_to_string());
        }

        return false;
    }

    /// <summary>Not fatal: the WAL grows until a later round succeeds; the writer's commits do not depend on it. Logged
    /// once per spell of failures, tried again after <see cref="Backoff"/>.</summary>
    private void Failed(string reason)
    {
        if (!_failing)
        {
            _failing = true;
            _logger.CheckpointFailed(reason);
        }

        Volatile.Write(ref _notBefore, Environment.TickCount64 + (long)Backoff.TotalMilliseconds);
    }

    /// <summary>Stops the thread (a pass in progress finishes) and closes the connection, before the writer's closes:
    /// the last connection to close checkpoints the rest and removes the WAL.</summary>
    public void Dispose()
    {
        _stopping = true;
        _wake.Set();
        _thread.Join();
        _connection.Dispose();
        _wake.Dispose();
    }
}
