namespace Interceptor.Tests.Smtp.IO;

/// <summary>A session's context as BlockingWork finds it: one thread of its own that runs what is posted, in order.</summary>
internal sealed class TurnContext : SynchronizationContext, Interceptor.Core.Threading.IBlockingWorkContext, IDisposable
{
    private readonly System.Collections.Concurrent.BlockingCollection<(SendOrPostCallback Callback, object? State)> _items = [];
    private int _posts;

    public TurnContext()
    {
        new Thread(() =>
        {
            SetSynchronizationContext(this);
            foreach (var (callback, state) in _items.GetConsumingEnumerable())
            {
                callback(state);
            }
        }) { Name = "turn", IsBackground = true }.Start();
    }

    public int Posts => Volatile.Read(ref _posts);

    public IDisposable EnterBlockingWork() => new CancellationTokenSource(); // nothing to undo: every item is posted anyway

    public override void Post(SendOrPostCallback d, object? state)
    {
        Interlocked.Increment(ref _posts);
        _items.Add((d, state));
    }

    /// <summary>Done once everything posted so far has run.</summary>
    public Task Idle()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _items.Add((_ => done.SetResult(), null));
        return done.Task;
    }

    public void Dispose() => _items.CompleteAdding();
}
