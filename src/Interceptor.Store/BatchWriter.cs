using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Interceptor.Core.Policy;
using Interceptor.Core.Threading;
using Microsoft.Extensions.Logging;

namespace Interceptor.Store;

/// <summary>
/// Group commit: callers queue writes into a bounded channel; one thread takes everything queued, runs it in one SQLite
/// transaction and commits it (one WAL append, see Schema.ConfigureWriter), then completes every task of the batch, or faults them all. Throughput
/// grows with load instead of being capped at one commit per row, and no task completes before its row is committed.
/// </summary>
internal sealed partial class BatchWriter : IAsyncDisposable
{
    private readonly Channel<WriteOp> _queue;
    private readonly WriteStatements _statements;
    private readonly StoreFileCheck _files;
    private readonly string _path;
    private readonly int _maxBatch;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    // Set by FailBatch for the batch being written; read and cleared with it by TakeSettled. Under the connection's lock.
    private StoreUnavailableException? _batchFailure;

    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Whoever writes holds it: the writer thread for a batch, or a caller committing its own write (BatchWriter.Here.cs).
    // _batch and the connection are only touched under it.
    private readonly Lock _connection = new();
    private readonly List<WriteOp> _batch = [];
    private long _lastCommitEnded;
    private readonly ConcurrentQueue<WriteOp> _deferred = new();
    private readonly Lock _deferredGate = new();
    private Task? _lastDeferred;
    private readonly TimeSpan _deferredDelay;
    private readonly ITimer _deferredTimer;
    private readonly WalCheckpointer _checkpointer;

    // Set after every write into the queue (and on close); the writer thread blocks on it. Not Task.Wait on the channel's
    // WaitToReadAsync: that spins with sched_yield (~25–50 calls) before it blocks, and the channel completes its
    // waiter through a thread-pool item first — a yield storm and an extra hop for every batch (perf trace -s).
    private readonly ManualResetEventSlim _queued = new(false, spinCount: 0);
    private bool _writerIdle;
    private bool _closed;
    private StoreUnavailableException? _broken;
    private StoreHealth _health;

    public BatchWriter(WriteStatements statements, FileGuard[] guards, WalIndex walIndex, string directory, string path, StoreTuning tuning, TimeProvider time, ILogger logger)
    {
        _statements = statements;
        _files = new StoreFileCheck(guards, directory);
        _path = path;
        _maxBatch = tuning.MaxBatch;
        _deferredDelay = tuning.DeferredCommitDelay;
        _time = time;
        _logger = logger;
        _health = new StoreHealth(path, 0, null, null, false);
        // Bounded so a stalled disk pushes back on the sessions instead of growing memory without limit.
        _queue = Channel.CreateBounded<WriteOp>(new BoundedChannelOptions(tuning.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writeHere = tuning.WriteHereWhenIdle;
        _quietBefore = tuning.QuietBeforeWritingHere;
        _slowWrite = tuning.SlowWriteHere;
        _walIndex = walIndex;
        // SQLite's automatic checkpoint would run in the committing thread, holding every user's commit: the checkpointer
        // runs it beside the writer instead, at the same threshold. It counts frames in the -shm: without one (unreadable)
        // SQLite's own stays on, as before.
        var checkpointPages = tuning.CheckpointPages ??
            Convert.ToInt32(ScalarOf(statements, "PRAGMA wal_autocheckpoint;"), System.Globalization.CultureInfo.InvariantCulture);
        if (walIndex.IsAvailable)
        {
            SQLitePCL.raw.sqlite3_wal_autocheckpoint(statements.Connection.Handle!, 0);
        }

        _checkpointer = new WalCheckpointer(WalCheckpointer.ConnectionStringFor(path), walIndex, AskToFinishCheckpoint, checkpointPages, logger);
        _deferredTimer = TimeProvider.System.CreateTimer(_ => WakeForDeferred(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        // A dedicated thread, since every batch blocks in file I/O (and the last pass of a checkpoint fsyncs); it should not
        // hold a thread-pool thread hostage.
        _thread = new Thread(Run) { IsBackground = true, Name = "state-store-writer" };
        _thread.Start();
    }

    public StoreHealth Health => Volatile.Read(ref _health);

    /// <summary>Set once the file can no longer be trusted; every later write and read fails until the store is reopened.</summary>
    public StoreUnavailableException? Broken => Volatile.Read(ref _broken);

    /// <summary>
    /// Queues a write and completes when its batch is committed. Cancellation only stops waiting for room in the queue:
    /// once queued, the write is committed (or fails) with its batch.
    /// </summary>
    public Task<T> EnqueueAsync<T>(Func<WriteStatements, T> work, CancellationToken cancellationToken) =>
        QueueAsync(new WriteOp<T>(work), cancellationToken);

    // A session's step in the lane of a user alone: no context, and the session's lane flows with it (see WriteOp). Only
    // for the one write a session's step waits for on every message (WriteHereOrEnqueueAsync: its Pending row); reads,
    // prunes and flushes (EnqueueAsync) resume on the pool, whoever awaits them.
    private static bool ResumeWhereCompleted => SynchronizationContext.Current is null && StepLanes.Current is not null;

    private async Task<T> QueueAsync<T>(WriteOp<T> op, CancellationToken cancellationToken)
    {
        if (Broken is { } broken)
        {
            throw broken;
        }

        if (!_queue.Writer.TryWrite(op))
        {
            try
            {
                await _queue.Writer.WriteAsync(op, cancellationToken);
            }
            catch (ChannelClosedException)
            {
                throw StoreFailures.Create(_path, "the store is closed");
            }
        }

        _queued.Set();
        return await op.Task;
    }

    /// <summary>
    /// Queues a write that nobody waits for: it rides with the next batch of queued writes, or is committed on its own
    /// after <see cref="StoreTuning.DeferredCommitDelay"/> when none comes, without waking the writer for it. The task
    /// completes when it is committed (or faults with its batch), like <see cref="EnqueueAsync{T}"/>'s.
    /// </summary>
    public Task<T> EnqueueDeferred<T>(Func<WriteStatements, T> work)
    {
        if (Broken is { } broken)
        {
            return Task.FromException<T>(broken);
        }

        var op = new WriteOp<T>(work);
        lock (_deferredGate)
        {
            if (_closed)
            {
                return Task.FromException<T>(StoreFailures.Create(_path, "the store is closed"));
            }

            _deferred.Enqueue(op);
            _lastDeferred = op.Task;
            if (_writerIdle)
            {
                // The writer sleeps without a deadline: make sure it looks again within the delay. Under load the next
                // queued write wakes it first and takes this one along; the timer then finds nothing to do.
                _writerIdle = false;
                _deferredTimer.Change(_deferredDelay, Timeout.InfiniteTimeSpan);
            }
        }

        return op.Task;
    }

    /// <summary>Completes once every deferred write queued so far is committed (or failed); readers call it first.</summary>
    /// <remarks>
    /// Judged by the last deferred write's task, not by the queue: a commit in progress (the writer's, or one on a
    /// caller's thread) may have taken the writes out of the queue without having committed them yet. Deferred writes
    /// are taken in order and committed in order, so the last one done means all are; else a write queued now is
    /// committed after that commit (both hold the connection's lock).
    /// </remarks>
    public Task FlushDeferredAsync(CancellationToken cancellationToken) =>
        Volatile.Read(ref _lastDeferred) is { IsCompleted: false } ? EnqueueAsync(_ => 0, cancellationToken) : Task.CompletedTask;

    private void WakeForDeferred()
    {
        lock (_deferredGate)
        {
            if (_deferred.IsEmpty)
            {
                // A commit made by its caller took them (BatchWriter.Here.cs) while the writer slept without a deadline:
                // it still does, so the next deferred write must arm this timer again.
                _writerIdle = true;
                return;
            }
        }

        {
            // A full queue means the writer is busy and will drain the deferred writes with its next batch anyway.
            if (_queue.Writer.TryWrite(WakeOp.Instance))
            {
                _queued.Set();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Completing the channel lets the thread drain what is queued, then exit.
        _queue.Writer.TryComplete();
        _queued.Set();
        await _stopped.Task;
        _checkpointer.Dispose();
        await _deferredTimer.DisposeAsync();
        _queued.Dispose();
    }

    private void Run()
    {
        HelperThreads.Started();
        try
        {
            // Blocking is fine here: this thread exists only to write.
            while (true)
            {
                bool deferredWaiting;
                lock (_deferredGate)
                {
                    deferredWaiting = !_deferred.IsEmpty;
                    _writerIdle = !deferredWaiting;
                }

                // Reset before looking, so that a write queued after the look sets it again and is not slept through.
                _queued.Reset();
                if (!_queue.Reader.TryPeek(out _))
                {
                    if (_queue.Reader.Completion.IsCompleted)
                    {
                        break;
                    }

                    if (deferredWaiting && !_queued.Wait(_deferredDelay))
                    {
                        // Nothing else came within the delay: the deferred writes go on their own.
                        Settled alone;
                        lock (_connection)
                        {
                            alone = CommitDeferredAlone();
                        }

                        alone.Run(onWriter: true);
                    }
                    else if (!deferredWaiting)
                    {
                        _queued.Wait();
                    }

                    continue;
                }

                lock (_deferredGate)
                {
                    _writerIdle = false;
                }

                Settled settle = default;
                var finishCheckpoint = false;
                lock (_connection)
                {
                    TakeDeferred();
                    while (_batch.Count < _maxBatch && _queue.Reader.TryRead(out var op))
                    {
                        if (op is FinishCheckpointOp)
                        {
                            finishCheckpoint = true;
                        }
                        else if (op is not WakeOp)
                        {
                            _batch.Add(op);
                        }
                    }

                    // Only wake-ups, and an earlier batch already took the deferred writes they were for: nothing to commit.
                    if (_batch.Count > 0)
                    {
                        WriteBatch();
                        settle = TakeSettled();
                    }
                }

                // Outside the lock (a session's step resumed here may write again, WriteOp) and before any checkpoint
                // work: the batch's writers (a Pending row before its 354) wait for their commit, not for a copy and fsync.
                settle.Run(onWriter: true);
                lock (_connection)
                {
                    // Asked by the checkpointer, or the WAL ran long without a restart: a request can be lost (a full
                    // queue drops it; a new round's pass makes this one BUSY), and under a flood nothing else ends it.
                    if (_checkpointer.WalRunsLong())
                    {
                        // Past the bound: wait for a pass of the checkpointer's in progress, then copy the rest (the disk
                        // is slower than the writes; this is their back-pressure).
                        FinishCheckpoint(waitForPass: true);
                    }
                    else if (finishCheckpoint)
                    {
                        // Never waiting here: a pass of a new round already copies what this one would.
                        FinishCheckpoint(waitForPass: false);
                    }
                }
            }

            // Closed: nothing can be deferred any more, and what was is committed before the store goes. Under the
            // connection's lock, so no caller starts a write of its own after this (it looks at _closed under it).
            Settled last;
            lock (_connection)
            {
                lock (_deferredGate)
                {
                    _closed = true;
                }

                last = CommitDeferredAlone();
            }

            last.Run(onWriter: true);
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    /// <summary>Deferred writes join the front of the batch: they were queued before whatever woke the writer.</summary>
    private void TakeDeferred()
    {
        while (_deferred.TryDequeue(out var op))
        {
            _batch.Add(op);
        }
    }

    private Settled CommitDeferredAlone()
    {
        TakeDeferred();
        if (_batch.Count == 0)
        {
            return default;
        }

        WriteBatch();
        return TakeSettled();
    }

    /// <summary>
    /// The batch just written or failed, taken out of <see cref="_batch"/> under the connection's lock, to be completed
    /// once it is released (<see cref="Settled.Run"/>). Completing under the lock would run a session's step resumed where
    /// its write completed (WriteOp) inside it, and a write of that step would re-enter the lock on the same thread.
    /// </summary>
    private Settled TakeSettled()
    {
        var settled = new Settled([.. _batch], _batchFailure);
        _batch.Clear();
        _batchFailure = null;
        return settled;
    }

    /// <param name="begun">The caller already began the transaction (a write committed where it was made).</param>
    private void WriteBatch(bool begun = false)
    {
        if (Broken is { } broken)
        {
            if (begun)
            {
                _statements.TryRollback();
            }

            FailBatch(broken);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        StoreUnavailableException? failure = null;
        var permanent = false;
        try
        {
            if (!begun)
            {
                _statements.Begin();
            }

            foreach (var op in _batch)
            {
                op.Execute(_statements);
            }

            // Checked last, right before the commit, so the batch fails rather than vanish into an unlinked file.
            if (CheckFiles() is { } problem)
            {
                failure = StoreFailures.Create(_path, problem.Description);
                permanent = problem.Permanent;
            }
            else
            {
                _statements.Commit();
            }
        }
#pragma warning disable CA1031 // whatever a batch throws must fault its tasks: a dead writer thread would hang every session
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failure = StoreFailures.From(_path, ex);
        }

        if (failure is not null)
        {
            _statements.TryRollback();
            Fail(failure, permanent);
            return;
        }

        var previous = Health;
        if (previous.LastFailure is not null)
        {
            _logger.WritesRecovered(_path);
        }

        Volatile.Write(ref _health, previous with { Commits = previous.Commits + 1, LastCommit = _time.GetUtcNow(), LastFailure = null });
        Volatile.Write(ref _lastCommitEnded, Stopwatch.GetTimestamp());
        _logger.Committed(_batch.Count, Stopwatch.GetElapsedTime(started));
        _checkpointer.AfterCommit();
    }

    private void Fail(StoreUnavailableException failure, bool permanent)
    {
        if (permanent)
        {
            Volatile.Write(ref _broken, failure);
            _logger.Unusable(failure.Message);
        }
        else if (Health.LastFailure is null)
        {
            // Log the transition into failure once; a failing disk would otherwise log every batch.
            _logger.WriteFailed(failure.Message);
        }

        Volatile.Write(ref _health, Health with { LastFailure = failure.Message, Broken = permanent || Health.Broken });
        FailBatch(failure);
    }

    private FileProblem? CheckFiles() => _files.Problem();

    /// <summary>Copies the WAL into the database beside this writer; tests look at its passes.</summary>
    internal WalCheckpointer Checkpointer => _checkpointer;

    /// <summary>Full file checks so far (<see cref="StoreFileCheck"/>); tests see whether a commit took the quick one.</summary>
    internal long FullFileChecks => _files.FullChecks;

    /// <summary>Whether this thread holds the connection's lock; tests see that a step resumed on the writer does not.</summary>
    internal bool LockHeldHere => _connection.IsHeldByCurrentThread;

    // The batch fails with this once its lock is released (TakeSettled).
    private void FailBatch(StoreUnavailableException failure) => _batchFailure = failure;
}
