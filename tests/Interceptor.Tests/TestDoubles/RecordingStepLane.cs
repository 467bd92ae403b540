using Interceptor.Core.Threading;

namespace Interceptor.Tests.TestDoubles;

/// <summary>A session's lane that records what its loops ask and queue, and runs nothing by itself.</summary>
internal sealed class RecordingStepLane : IStepLane
{
    public bool GoOn { get; init; }

    /// <summary>Runs what is queued on the thread pool as well (a session that must go on); otherwise only records it.</summary>
    public bool RunsQueued { get; init; }

    public int Asked { get; private set; }

    public int SlicesUsed { get; private set; }

    public int Blocking;

    public List<Action> Queued { get; } = [];

    public bool GoOnHere()
    {
        Asked++;
        return GoOn;
    }

    public void Queue(Action continuation)
    {
        Queued.Add(continuation);
        if (RunsQueued)
        {
            ThreadPool.QueueUserWorkItem(static c => c(), continuation, preferLocal: false);
        }
    }

    public void SliceUsed() => SlicesUsed++;

    public StepWait LastWait { get; set; }

    public IDisposable EnterBlockingWork()
    {
        Interlocked.Increment(ref Blocking);
        return new Scope(this);
    }

    private sealed class Scope(RecordingStepLane lane) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref lane.Blocking);
    }
}
