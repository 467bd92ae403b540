using Interceptor.Core.Events;

namespace Interceptor.Daemon.Record;

/// <summary>Hands each finished transaction to every recorder (the log line, the metrics).</summary>
public sealed class CompositeRecorder(params ITransactionRecorder[] recorders) : ITransactionRecorder
{
    public void Record(TransactionEvent transaction)
    {
        foreach (var recorder in recorders)
        {
            recorder.Record(transaction);
        }
    }

    public void UpstreamFailed(string stage)
    {
        foreach (var recorder in recorders)
        {
            recorder.UpstreamFailed(stage);
        }
    }
}
