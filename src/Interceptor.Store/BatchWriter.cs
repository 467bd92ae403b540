using System.Diagnostics;
using System.Threading.Channels;
using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;

namespace Interceptor.Store;

/// <summary>One queued write; completed by the writer thread once its batch is committed (or failed).</summary>
internal abstract class WriteOp
{
    public abstract void Execute(WriteStatements statements);

    public abstract void Complete();

    public abstract void Fail(Exception exception);
}

internal sealed class WriteOp<T>(Func<WriteStatements, T> work) : WriteOp
{
    // Continuations run on the thread pool, never inline on the writer thread, which must get back to SQLite.
    private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private T _result = default!;

    public Task<T> Task => _completion.Task;

    public override void Execute(WriteStatements statements) => _result = work(statements);

    public override void Complete() => _completion.TrySetResult(_result);

    public override void Fail(Exception exception) => _completion.TrySetException(exception);
}

/// <summary>
/// Group commit: callers queue writes into a bounded channel; one thread takes everything queued, runs it in one SQLite
/// transaction and commits it (one WAL append, see Schema.ConfigureWriter), then completes every task of the batch, or faults them all. Throughput
/// grows with load instead of being capped at one commit per row, and no task completes before its row is committed.
/// </summary>
internal sealed class BatchWriter : IAsyncDisposable
{
    private readonly Channel<WriteOp> _queue;
    private readonly WriteStatements _statements;
    private readonly FileGuard[] _guards;
    private readonly string _directory;
    private readonly string _path;
    private readonly int _maxBatch;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<WriteOp> _batch = [];
    private StoreUnavailableException? _broken;
    private StoreHealth _health;

    public BatchWriter(WriteStatements statements, FileGuard[] guards, string directory, string path, StoreTuning tuning, TimeProvider time, ILogger logger)
    {
        _statements = statements;
        _guards = guards;
        _directory = directory;
        _path = path;
        _maxBatch = tuning.MaxBatch;
        _time = time;
        _logger = logger;
        _health = new StoreHealth(path, 0, null, null, false);
        // Bounded so a stalled disk pushes back on the sessions instead of growing memory without limit.
        _queue = Channel.CreateBounded<WriteOp>(new BoundedChannelOptions(tuning.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        // A dedicated thread, since every batch blocks in file I/O (and checkpoints fsync); it should not hold a thread-pool thread hostage.
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
    public async Task<T> EnqueueAsync<T>(Func<WriteStatements, T> work, CancellationToken cancellationToken)
    {
        if (Broken is { } broken)
        {
            throw broken;
        }

        var op = new WriteOp<T>(work);
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

        return await op.Task;
    }

    public async ValueTask DisposeAsync()
    {
        // Completing the channel lets the thread drain what is queued, then exit.
        _queue.Writer.TryComplete();
        await _stopped.Task;
    }

    private void Run()
    {
        try
        {
            // Blocking on the channel is fine here: this thread exists only to write.
            while (_queue.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                while (_batch.Count < _maxBatch && _queue.Reader.TryRead(out var op))
                {
                    _batch.Add(op);
                }

                WriteBatch();
                _batch.Clear();
            }
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    private void WriteBatch()
    {
        if (Broken is { } broken)
        {
            FailBatch(broken);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        StoreUnavailableException? failure = null;
        var permanent = false;
        try
        {
            _statements.Begin();
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
            _logger.LogInformation("State store {Path} writes recovered", _path);
        }

        Volatile.Write(ref _health, previous with { Commits = previous.Commits + 1, LastCommit = _time.GetUtcNow(), LastFailure = null });
        _logger.LogTrace("Committed {Count} writes in {Elapsed}", _batch.Count, Stopwatch.GetElapsedTime(started));
        foreach (var op in _batch)
        {
            op.Complete();
        }
    }

    private void Fail(StoreUnavailableException failure, bool permanent)
    {
        if (permanent)
        {
            Volatile.Write(ref _broken, failure);
            _logger.LogCritical("State store is unusable until the daemon reopens it: {Reason}", failure.Message);
        }
        else if (Health.LastFailure is null)
        {
            // Log the transition into failure once; a failing disk would otherwise log every batch.
            _logger.LogError("State store write failed; mail is refused until it recovers: {Reason}", failure.Message);
        }

        Volatile.Write(ref _health, Health with { LastFailure = failure.Message, Broken = permanent || Health.Broken });
        FailBatch(failure);
    }

    private FileProblem? CheckFiles()
    {
        foreach (var guard in _guards)
        {
            if (guard.Problem() is { } problem)
            {
                return problem;
            }
        }

        return FileGuard.ReadOnlyProblem(_directory) is { } readOnly ? new FileProblem(readOnly, false) : null;
    }

    private void FailBatch(StoreUnavailableException failure)
    {
        foreach (var op in _batch)
        {
            op.Fail(failure);
        }
    }
}
