using System.Diagnostics;
using Interceptor.Core.Threading;
using SQLitePCL;

namespace Interceptor.Store;

/// <summary>
/// A write committed on the caller's own thread when nobody else is writing. A relayed message waits for its Pending
/// row before DATA goes upstream; through the queue that costs two thread wake-ups (the writer's, then the session's
/// continuation on a pump), about 0.35 ms of the ~0.45 ms DATA step on tests/bench/run, for a commit of ~40 µs. Under
/// load (another commit within <see cref="StoreTuning.QuietBeforeWritingHere"/>) the write queues as before, so group
/// commit carries the load.
/// </summary>
/// <remarks>
/// What keeps the caller's thread (often a socket thread, with every connection polled there) from waiting on the disk,
/// since with synchronous=NORMAL a commit that only appends to the WAL writes to the page cache and syncs nothing:
/// BEGIN does not wait for a lock another process holds (the write queues instead, where the writer may wait); SQLite's
/// automatic checkpoint (an fsync) is off for every commit, and <see cref="WalCheckpointer"/> checkpoints on its own
/// thread; a commit that would restart the WAL (SQLite fsyncs the new header) is left to the writer
/// (<see cref="WalIndex"/>); and a commit that took longer than <see cref="StoreTuning.SlowWriteHere"/> (a disk under
/// pressure: the page cache throttles writers) sends every write to the queue for <see cref="PauseAfterSlow"/>.
/// </remarks>
internal sealed partial class BatchWriter
{
    private static readonly TimeSpan PauseAfterSlow = TimeSpan.FromSeconds(1);

    private readonly bool _writeHere;
    private readonly TimeSpan _quietBefore;
    private readonly TimeSpan _slowWrite;
    private readonly WalIndex _walIndex;
    private long _writeHereAfter;

    /// <summary>Commits are made on the caller's thread and the writer's: tests count them with this.</summary>
    public long WrittenHere { get; private set; }

    /// <summary>Commits made here that took longer than <see cref="StoreTuning.SlowWriteHere"/>, each followed by a pause.</summary>
    public long SlowWritesHere { get; private set; }

    /// <summary>
    /// Like <see cref="EnqueueAsync{T}"/>, but commits the write at once on this thread when the writer is idle and
    /// nothing is queued (the returned task is then complete); deferred writes waiting for a batch ride along.
    /// </summary>
    public Task<T> WriteHereOrEnqueueAsync<T>(Func<WriteStatements, T> work, CancellationToken cancellationToken)
    {
        var op = new WriteOp<T>(work, ResumeWhereCompleted);
        return TryWriteHere(op) ? op.Task : QueueAsync(op, cancellationToken);
    }

    private bool TryWriteHere(WriteOp op)
    {
        // A demoted thread (ThreadDemotion) would hold the write lock at a flood's priority: the writer commits instead.
        if (!_writeHere || ThreadDemotion.IsDemoted || Broken is not null || _queue.Reader.Count > 0 || Environment.TickCount64 < Volatile.Read(ref _writeHereAfter) ||
            Stopwatch.GetElapsedTime(Volatile.Read(ref _lastCommitEnded)) < _quietBefore || !_connection.TryEnter())
        {
            return false;
        }

        Settled settled = default;
        try
        {
            // Again under the lock: queued writes go first (the writer is about to take them), and none starts after the
            // close.
            if (_closed || _queue.Reader.Count > 0)
            {
                return false;
            }

            var started = Stopwatch.GetTimestamp();
            if (!TryBeginWithoutWaiting())
            {
                // SQLite may have slept before it failed (a read lock retried while another process checkpoints).
                PauseIfSlow(started);
                return false;
            }

            // A commit that would restart the WAL (an fsync of its header) is left to the writer. Looked at inside the
            // transaction: before BEGIN the checkpointer could still copy the last frame; inside it no frame can be added,
            // and none uncopied. (A restart is due once per checkpoint: the BEGIN and ROLLBACK it costs then are cheaper
            // than a second look on every commit.) A WAL that ran long goes to the writer too, whose short pass ends it:
            // callers committing back to back would otherwise keep appending while the checkpointer's passes run.
            if (!_walIndex.TryReadHeader(out var frames, out var copied) || frames <= copied || _checkpointer.RunsLong(frames))
            {
                _statements.TryRollback();
                return false;
            }

            try
            {
                TakeDeferred();
                _batch.Add(op);
                WriteBatch(begun: true);
                settled = TakeSettled();
            }
            catch (Exception e) when (_batch.Count > 0)
            {
                // A failure outside WriteBatch's own handling: the writes taken (deferred ones too) fail with it, none is
                // dropped unanswered.
                _batchFailure ??= StoreFailures.From(_path, e);
                settled = TakeSettled();
                throw;
            }
            finally
            {
                _batch.Clear();
            }

            WrittenHere++;
            PauseIfSlow(started);
            return true;
        }
        finally
        {
            _connection.Exit();
            settled.Run();
        }
    }

    /// <summary>The disk is slow (or made slow): the writer's thread waits for it, no caller's, for a while.</summary>
    private void PauseIfSlow(long started)
    {
        if (Stopwatch.GetElapsedTime(started) > _slowWrite)
        {
            SlowWritesHere++;
            Volatile.Write(ref _writeHereAfter, Environment.TickCount64 + (long)PauseAfterSlow.TotalMilliseconds);
        }
    }

    /// <summary>
    /// BEGIN IMMEDIATE that fails at once when another process holds the write lock (an admin's sqlite3 shell), instead
    /// of waiting out the busy timeout here; through the raw handle, since Microsoft.Data.Sqlite retries a busy
    /// statement by itself until its command timeout. Any failure leaves the write to the queue, whose writer reports it.
    /// </summary>
    private bool TryBeginWithoutWaiting()
    {
        var handle = _statements.Connection.Handle!;
        raw.sqlite3_busy_timeout(handle, 0);
        try
        {
            return raw.sqlite3_exec(handle, "BEGIN IMMEDIATE;") == raw.SQLITE_OK;
        }
        finally
        {
            raw.sqlite3_busy_timeout(handle, Schema.BusyTimeoutMilliseconds);
        }
    }

    private static object? ScalarOf(WriteStatements statements, string sql)
    {
        using var command = statements.Connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    /// <summary>The checkpointer's passes left frames behind (commits came meanwhile): the writer copies them.</summary>
    private void AskToFinishCheckpoint()
    {
        // A full queue means the writer is busy: the next threshold asks again, and the writer's own look at the WAL's
        // length (WalCheckpointer.WalRunsLong) ends a WAL that no request reaches.
        if (!DropFinishRequests && _queue.Writer.TryWrite(FinishCheckpointOp.Instance))
        {
            _queued.Set();
        }
    }

    /// <summary>
    /// On the writer thread, under the connection's lock: one pass over what the checkpointer's passes left (few
    /// frames), so that every frame is copied and the next commit restarts the WAL instead of appending for ever.
    /// </summary>
    private void FinishCheckpoint(bool waitForPass)
    {
        if (_checkpointer.PassOn(_statements.Connection, waitForPass))
        {
            FinishedCheckpoints++;
        }
    }

    /// <summary>Test hook: every request to finish a checkpoint is lost, as a full queue loses one.</summary>
    internal bool DropFinishRequests { get; set; }

    /// <summary>Passes the writer's thread made for the checkpointer (<see cref="FinishCheckpoint"/>).</summary>
    public long FinishedCheckpoints { get; private set; }
}
