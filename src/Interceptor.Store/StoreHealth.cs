namespace Interceptor.Store;

/// <summary>How the store is doing, cheap to read (no I/O): for `status` and metrics.</summary>
/// <param name="Path">The database file.</param>
/// <param name="Commits">Batches committed since the store was opened (each one written to the WAL; the WAL is fsynced at checkpoints, see Schema.ConfigureWriter).</param>
/// <param name="LastCommit">When the last batch was committed, if any.</param>
/// <param name="LastFailure">Why the last batch failed, when the most recent batch failed; null while healthy.</param>
/// <param name="Broken">True once the store can no longer be written until it is reopened (file deleted or replaced).</param>
public sealed record StoreHealth(string Path, long Commits, DateTimeOffset? LastCommit, string? LastFailure, bool Broken);
