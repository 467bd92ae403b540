using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Interceptor.Store;

/// <summary>
/// The daemon's durable state in one SQLite file, <c>state.db</c> under <c>State.Directory</c>: every transaction,
/// policy refusals and suspensions. Writes are group-committed (see <see cref="BatchWriter"/>): each task completes
/// only after its row is committed (it survives the daemon being killed), and every failure, including the file being deleted, replaced or made read-only
/// under the running daemon, surfaces as <see cref="StoreUnavailableException"/> so mail is refused (451), never
/// relayed unaccounted.
/// </summary>
public sealed partial class SqliteStateStore : IStateStore, IActivityReadModel
{
    /// <summary>The database file name inside the state directory.</summary>
    public const string FileName = "state.db";

    private readonly string _path;
    private readonly string _readConnectionString;
    private readonly SqliteConnection _writeConnection;
    private readonly WriteStatements _statements;
    private readonly FileGuard[] _guards;
    private readonly WalIndex _walIndex;
    private readonly BatchWriter _writer;
    private readonly ILogger _logger;
    private readonly TallyBook _tallies = new();
    private readonly ITimer _tallyTimer;
    private readonly SemaphoreSlim _tallyFlush = new(1, 1);
    private int _disposed;

    /// <summary>How often counted tallies are written (and logged) when nobody reads the store meanwhile.</summary>
    internal static readonly TimeSpan TallyFlushInterval = TimeSpan.FromSeconds(5);

    private SqliteStateStore(string path, string readConnectionString, SqliteConnection writeConnection, WriteStatements statements, FileGuard[] guards, WalIndex walIndex, BatchWriter writer, ILogger logger)
    {
        _logger = logger;
        _path = path;
        _readConnectionString = readConnectionString;
        _writeConnection = writeConnection;
        _statements = statements;
        _guards = guards;
        _walIndex = walIndex;
        _writer = writer;
        _tallyTimer = TimeProvider.System.CreateTimer(_ => _ = FlushTalliesQuietlyAsync(), null, TallyFlushInterval, TallyFlushInterval);
    }

    /// <summary>The database file.</summary>
    public string Path => _path;

    /// <inheritdoc />
    public StoreHealth Health => _writer.Health;

    /// <summary>Batches committed since opening; each is one commit however many writes it carried.</summary>
    internal long CommitCount => _writer.Health.Commits;

    /// <summary>Commits made on a caller's thread instead of the writer's (BatchWriter.Here.cs).</summary>
    internal long WrittenHereCount => _writer.WrittenHere;

    internal long FullFileChecks => _writer.FullFileChecks;

    internal bool WriteLockHeldHere => _writer.LockHeldHere;

    internal WalCheckpointer Checkpointer => _writer.Checkpointer;

    /// <summary>Passes the writer's thread made to copy what came during the checkpointer's.</summary>
    internal long FinishedCheckpoints => _writer.FinishedCheckpoints;

    /// <summary>Test hook: the checkpointer's requests to the writer are lost (<see cref="BatchWriter.DropFinishRequests"/>).</summary>
    internal bool DropFinishRequests
    {
        set => _writer.DropFinishRequests = value;
    }

    /// <summary>The WAL's frames since it last restarted, read through the store's own -shm descriptor (a test must not
    /// open and close one: closing any descriptor of a file drops this process's locks on it, SQLite's included).</summary>
    internal uint WalFrames => _walIndex.Frames();

    internal long SlowWritesHereCount => _writer.SlowWritesHere;

    /// <summary>
    /// Opens (creating if needed, mode 0750) <paramref name="directory"/> and the database in it, and brings the schema
    /// up to date.
    /// </summary>
    /// <exception cref="StoreUnavailableException">The directory or file cannot be created, opened or written; the
    /// message names the path and the cause.</exception>
    public static SqliteStateStore Open(string directory, TimeProvider time, ILogger logger) =>
        Open(directory, time, logger, StoreTuning.Default);

    internal static SqliteStateStore Open(string directory, TimeProvider time, ILogger logger, StoreTuning tuning)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(tuning);
        var fullDirectory = System.IO.Path.GetFullPath(directory);
        var path = System.IO.Path.Combine(fullDirectory, FileName);
        var opened = new List<IDisposable>();
        try
        {
            StoreDirectory.Prepare(fullDirectory, path);
            var writeConnection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = path,
                Mode = SqliteOpenMode.ReadWriteCreate,
                // The write connection lives as long as the store; pooling would only delay its close and final checkpoint.
                Pooling = false,
                DefaultTimeout = Schema.BusyTimeoutMilliseconds / 1000,
            }.ToString());
            opened.Add(writeConnection);
            writeConnection.Open();
            if (SQLitePCL.raw.sqlite3_db_readonly(writeConnection.Handle, "main") == 1)
            {
                throw StoreFailures.Create(path, "read-only: SQLite could open the file only for reading (permission denied or read-only filesystem)");
            }

            Schema.ConfigureWriter(writeConnection);
            var found = Schema.Migrate(writeConnection, time.GetUtcNow());

            // An existing directory (a hand-made one, an old install) may be open to everybody, and SQLite creates its
            // files with 0644 under the usual umask: the store holds every customer's senders and volumes.
            var tightened = StoreDirectory.TightenAll(fullDirectory, path);
            if (tightened.Count > 0)
            {
                logger.PermissionsTightened(string.Join("; ", tightened));
            }

            // Both files exist now (WAL mode opens the -wal on first use) and stay until the write connection closes.
            var guards = new[] { FileGuard.Open(path), FileGuard.Open(path + "-wal") };
            opened.AddRange(guards);
            var statements = new WriteStatements(writeConnection);
            opened.Add(statements);
            var readConnectionString = new SqliteConnectionStringBuilder
            {
                DataSource = path,
                // Read-only, so a reader never creates an empty database where the real one was deleted.
                Mode = SqliteOpenMode.ReadOnly,
                Pooling = true,
                DefaultTimeout = Schema.BusyTimeoutMilliseconds / 1000,
            }.ToString();
            // Closed with the guards, after the connections: closing any descriptor of the -shm drops SQLite's locks on it.
            var walIndex = WalIndex.Open(path);
            opened.Add(walIndex);
            var writer = new BatchWriter(statements, guards, walIndex, fullDirectory, path, tuning, time, logger);
            logger.Opened(path, found, Schema.CurrentVersion);
            return new SqliteStateStore(path, readConnectionString, writeConnection, statements, guards, walIndex, writer, logger);
        }
#pragma warning disable CA1031 // every open failure becomes the one exception callers handle, with the cause in it
        catch (Exception ex)
#pragma warning restore CA1031
        {
            // Reverse order: the guards' handles must close after the SQLite connection (POSIX lock semantics).
            for (var i = opened.Count - 1; i >= 0; i--)
            {
                opened[i].Dispose();
            }

            var failure = ex is InvalidOperationException ? StoreFailures.Create(path, ex.Message, ex) : StoreFailures.From(path, ex);
            logger.CannotOpen(failure.Message);
            throw failure;
        }
    }

    /// <inheritdoc />
    public Task RecordTransactionAsync(TransactionEvent transaction, CancellationToken cancellationToken)
    {
        Validate.Transaction(transaction);
        // The one write a client waits for on every relayed message (its Pending row, before DATA): at once when idle.
        return _writer.WriteHereOrEnqueueAsync(s => s.UpsertTransaction(transaction), cancellationToken);
    }

    /// <inheritdoc />
    public Task RecordOutcomeDeferred(TransactionEvent final)
    {
        Validate.Transaction(final);
        return _writer.EnqueueDeferred(s => s.UpsertTransaction(final));
    }

    /// <inheritdoc />
    public Task RecordRefusalAsync(PolicyRefusal refusal, CancellationToken cancellationToken)
    {
        Validate.Refusal(refusal);
        return _writer.EnqueueAsync(s => s.InsertRefusal(refusal), cancellationToken);
    }

    /// <summary>Inserts or replaces the suspension of <see cref="Suspension.Uid"/>.</summary>
    public Task SaveSuspensionAsync(Suspension suspension, CancellationToken cancellationToken)
    {
        Validate.Suspension(suspension);
        return _writer.EnqueueAsync(s => s.UpsertSuspension(suspension), cancellationToken);
    }

    /// <inheritdoc />
    public async Task<bool> RemoveSuspensionAsync(uint uid, CancellationToken cancellationToken) =>
        await _writer.EnqueueAsync(s => s.DeleteSuspension(uid), cancellationToken) > 0;

    /// <summary>All suspensions, by uid.</summary>
    public Task<IReadOnlyList<Suspension>> LoadSuspensionsAsync(CancellationToken cancellationToken) =>
        ReadAsync(StoreQueries.SuspensionsAsync, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<QuotaCharge>> LoadChargesAsync(DateTimeOffset since, DateTimeOffset endedSince, CancellationToken cancellationToken) =>
        ReadAsync((c, ct) => StoreQueries.ChargesAsync(c, since, endedSince, ct), cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<TransactionEvent>> LoadTransactionsAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return ReadAsync((c, ct) => StoreQueries.TransactionsAsync(c, since, uid, limit, ct), cancellationToken);
    }

    /// <summary>Refusals at or after <paramref name="since"/>, newest first, optionally of one user.</summary>
    public Task<IReadOnlyList<PolicyRefusal>> LoadRefusalsAsync(DateTimeOffset since, uint? uid, CancellationToken cancellationToken) =>
        ReadAsync((c, ct) => StoreQueries.RefusalsAsync(c, since, uid, ct), cancellationToken);

    /// <summary>
    /// Deletes refusals and tallies older than <paramref name="before"/> and transactions started before
    /// <paramref name="transactionsBefore"/>, a few thousand rows per batch so that a large sweep shares the writer with
    /// live traffic instead of stalling it. Suspensions are kept.
    /// </summary>
    public async Task PruneAsync(DateTimeOffset before, DateTimeOffset transactionsBefore, CancellationToken cancellationToken)
    {
        while (await _writer.EnqueueAsync(s => s.PruneChunkBefore(before, transactionsBefore), cancellationToken) >= WriteStatements.PruneChunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <inheritdoc />
    /// <remarks>Users with neither transactions, tallies nor refusals in the period are absent.</remarks>
    public Task<IReadOnlyList<UserActivity>> SummarizeUsersAsync(DateTimeOffset since, CancellationToken cancellationToken) =>
        ReadAsync((c, ct) => StoreQueries.UsersAsync(c, since, ct), cancellationToken);

    /// <summary>Runs <paramref name="work"/> on the write connection inside a batch; for tests (pragmas, fault injection).</summary>
    internal Task<T> RunOnWriterAsync<T>(Func<SqliteConnection, T> work) =>
        _writer.EnqueueAsync(s => work(s.Connection), CancellationToken.None);

    /// <summary>For tests: a write committed on the caller's thread when the writer is idle, as a Pending row is.</summary>
    internal Task<T> WriteHereOrOnWriterAsync<T>(Func<SqliteConnection, T> work) =>
        _writer.WriteHereOrEnqueueAsync(s => work(s.Connection), CancellationToken.None);

    /// <summary>Waits for every queued write to be committed or failed, then closes the database.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _tallyTimer.DisposeAsync();
        try
        {
            await FlushTalliesAsync(CancellationToken.None);
        }
        catch (StoreUnavailableException e)
        {
            _logger.TalliesLostAtClose(e.Message);
        }

        await _writer.DisposeAsync();
        _tallyFlush.Dispose();
        using (var pooled = new SqliteConnection(_readConnectionString))
        {
            SqliteConnection.ClearPool(pooled);
        }

        _statements.Dispose();
        // Closing the last connection checkpoints the WAL into the database and removes the -wal file, unless the
        // database was deleted or replaced: then SQLite leaves the WAL behind.
        _writeConnection.Dispose();
        if (_writer.Broken is not null)
        {
            RemoveOrphanedWal();
        }

        _walIndex.Dispose();
        foreach (var guard in _guards)
        {
            guard.Dispose();
        }
    }

    /// <summary>
    /// The WAL of a deleted or replaced database belongs to no file any more. Left in place, the next open would replay
    /// its pages into whatever database sits at the path now (a restored backup, a new empty file) and corrupt it.
    /// Removed only while the path still names our own WAL, never a WAL some other process created since.
    /// </summary>
    private void RemoveOrphanedWal()
    {
        var wal = _path + "-wal";
        if (!_guards[1].StillAtPath())
        {
            return;
        }

        try
        {
            File.Delete(wal);
            File.Delete(_path + "-shm");
            _logger.OrphanedWalRemoved(wal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _logger.OrphanedWalNotRemoved(wal, ex.Message);
        }
    }

    internal async Task<T> ReadAsync<T>(Func<SqliteConnection, CancellationToken, Task<T>> query, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw StoreFailures.Create(_path, "the store is closed");
        }

        if (_writer.Broken is { } broken)
        {
            throw broken;
        }

        try
        {
            // Read your writes: outcomes still waiting for a batch, and tallies, are committed first.
            await FlushTalliesAsync(cancellationToken);
            await _writer.FlushDeferredAsync(cancellationToken);
        }
        catch (StoreUnavailableException)
        {
            // Writes failing (a read-only directory, say) need not stop reads of what is on disk.
        }

        try
        {
            // On a thread of its own: SQLite answers synchronously (Microsoft.Data.Sqlite's async methods too), and a pool
            // thread held for a long read (the pruning's plan over a flood's day: 0.3 s for 400,000 rows) starved the
            // store's write completions, which resume on the pool: the sessions' commits waited as long.
            return await Task.Factory.StartNew(
                async () =>
                {
                    await using var connection = new SqliteConnection(_readConnectionString);
                    await connection.OpenAsync(cancellationToken);
                    return await query(connection, cancellationToken);
                },
                cancellationToken,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default).Unwrap();
        }
        catch (Exception ex) when (ex is SqliteException or IOException or InvalidOperationException or UnauthorizedAccessException or TaskSchedulerException)
        {
            // TaskSchedulerException: the read's thread could not start (the process out of threads or memory); the admin's
            // command gets the store's error like any other failed read, not an unhandled exception.
            throw StoreFailures.From(_path, ex);
        }
    }
}
