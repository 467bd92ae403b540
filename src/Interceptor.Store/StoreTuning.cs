namespace Interceptor.Store;

/// <summary>Sizes of the write path; the defaults serve the daemon, tests shrink them to compare strategies.</summary>
/// <param name="MaxBatch">Most writes committed together; 1 means one commit per write.</param>
/// <param name="QueueCapacity">Writes waiting for the writer before callers have to wait for room.</param>
/// <param name="DeferredCommitDelay">Longest a deferred write (a transaction's outcome) waits for a batch to ride with.</param>
internal sealed record StoreTuning(int MaxBatch, int QueueCapacity, TimeSpan DeferredCommitDelay)
{
    public static StoreTuning Default { get; } = new(MaxBatch: 8192, QueueCapacity: 16384, DeferredCommitDelay: TimeSpan.FromMilliseconds(50));
}
