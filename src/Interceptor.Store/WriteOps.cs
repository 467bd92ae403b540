namespace Interceptor.Store;

/// <summary>One queued write; completed by the writer thread once its batch is committed (or failed).</summary>
internal abstract class WriteOp
{
    public abstract void Execute(WriteStatements statements);

    public abstract void Complete();

    public abstract void Fail(Exception exception);

    /// <summary>Completing it runs its awaiter's continuation on the completing thread (see WriteOp{T}).</summary>
    public virtual bool ResumesWhereCompleted => false;
}

/// <param name="resumeWhereCompleted">The caller is a session's step in the lane of a user alone (no context: see
/// Core's IStepLane), which runs wherever its awaits complete, as on a socket thread: its continuation runs on the thread
/// that completes the write, after the connection's lock is released, instead of waking an idle pool thread (one wake-up
/// per relayed message under load: 0.33 ms to a core on average, README → Performance, fifteenth and sixteenth sessions). The step gives
/// its thread up after a slice, and blocking work goes to its turn. Any other caller's continuation does not resume where
/// completed: code that is not a session's step could block the writer, which must get back to SQLite. A session in its
/// turns is posted to its context, whose scheduler may keep one light user's step for the end of the batch
/// (InlineContinuations.KeepOne, one step a batch either way).</param>
internal sealed class WriteOp<T>(Func<WriteStatements, T> work, bool resumeWhereCompleted = false) : WriteOp
{
    private readonly TaskCompletionSource<T> _completion =
        new(resumeWhereCompleted ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously);
    private T _result = default!;

    public Task<T> Task => _completion.Task;

    public override bool ResumesWhereCompleted => resumeWhereCompleted;

    public override void Execute(WriteStatements statements) => _result = work(statements);

    public override void Complete() => _completion.TrySetResult(_result);

    public override void Fail(Exception exception) => _completion.TrySetException(exception);
}

/// <summary>A queued signal to the writer thread that writes nothing: its own type says what it asks for.</summary>
internal abstract class SignalOp : WriteOp
{
    public sealed override void Execute(WriteStatements statements)
    {
    }

    public sealed override void Complete()
    {
    }

    public sealed override void Fail(Exception exception)
    {
    }
}

/// <summary>Asks the writer thread to copy into the database the WAL frames that arrived during the checkpointer's passes
/// (WalCheckpointer).</summary>
internal sealed class FinishCheckpointOp : SignalOp
{
    public static readonly FinishCheckpointOp Instance = new();
}

/// <summary>Puts the writer thread in a timed wait once deferred writes arrived while it waited for nothing.</summary>
internal sealed class WakeOp : SignalOp
{
    public static readonly WakeOp Instance = new();
}
