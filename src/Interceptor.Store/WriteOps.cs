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
    // Continuations never run on the writer's thread: it must get back to SQLite, and a session's step could run on for as
    // long as its client keeps it busy (every user's commits would wait). A session's context queues what the writer posts.
    private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private T _result = default!;

    public Task<T> Task => _completion.Task;

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
