namespace Interceptor.Store;

/// <summary>Sizes of the write path; the defaults serve the daemon, tests shrink them to compare strategies.</summary>
/// <param name="MaxBatch">Most writes committed together; 1 means one commit per write.</param>
/// <param name="QueueCapacity">Writes waiting for the writer before callers have to wait for room.</param>
/// <param name="DeferredCommitDelay">Longest a deferred write (a transaction's outcome) waits for a batch to ride with.</param>
/// <param name="WriteHereWhenIdle">A Pending row is committed on its caller's thread when nobody else writes (BatchWriter.Here.cs).</param>
/// <param name="QuietBeforeWritingHere">
/// ... and no commit ended within this: writes closer together go to the queue, where one commit carries many rows. A
/// commit per row cost ~6% more CPU per message under tests/bench/run's load; latency is what matters when quiet.
/// </param>
/// <param name="SlowWriteHere">
/// A commit made by its caller that took longer (a disk under pressure: the page cache throttles writers) sends every
/// write to the writer for a second. ~40 times a normal commit; the first one in a process can take that long (JIT).
/// </param>
/// <param name="CheckpointPages">WAL frames not yet copied that start a checkpoint (WalCheckpointer); null: SQLite's
/// wal_autocheckpoint (1,000).</param>
internal sealed record StoreTuning(
    int MaxBatch, int QueueCapacity, TimeSpan DeferredCommitDelay, bool WriteHereWhenIdle, TimeSpan QuietBeforeWritingHere, TimeSpan SlowWriteHere,
    int? CheckpointPages = null)
{
    public static StoreTuning Default { get; } = new(
        MaxBatch: 8192, QueueCapacity: 16384, DeferredCommitDelay: TimeSpan.FromMilliseconds(50), WriteHereWhenIdle: true,
        QuietBeforeWritingHere: TimeSpan.FromMilliseconds(2), SlowWriteHere: TimeSpan.FromMilliseconds(2));
}
