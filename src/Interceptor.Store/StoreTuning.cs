namespace Interceptor.Store;

/// <summary>Sizes of the write path; the defaults serve the daemon, tests shrink them to compare strategies.</summary>
/// <param name="MaxBatch">Most writes committed together; 1 means one commit per write.</param>
/// <param name="QueueCapacity">Writes waiting for the writer before callers have to wait for room.</param>
internal sealed record StoreTuning(int MaxBatch, int QueueCapacity)
{
    public static StoreTuning Default { get; } = new(MaxBatch: 8192, QueueCapacity: 16384);
}
