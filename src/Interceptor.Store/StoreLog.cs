using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;

namespace Interceptor.Store;

/// <summary>The state store's log lines (event ids 500-599).</summary>
internal static partial class StoreLog
{
    [LoggerMessage(500, LogLevel.Warning, "State store permissions tightened (directory at most 0750, database files at most 0640): {Changes}")]
    public static partial void PermissionsTightened(this ILogger logger, string changes);

    [LoggerMessage(501, LogLevel.Information, "State store {Path} open (schema v{Found} -> v{Current})")]
    public static partial void Opened(this ILogger logger, string path, int found, int current);

    [LoggerMessage(502, LogLevel.Error, "Cannot open the state store: {Reason}")]
    public static partial void CannotOpen(this ILogger logger, string reason);

    [LoggerMessage(503, LogLevel.Error, "tallies lost at close: {Reason}")]
    public static partial void TalliesLostAtClose(this ILogger logger, string reason);

    [LoggerMessage(504, LogLevel.Warning, "Removed {Wal}: its database was deleted or replaced while open, so its transactions are lost")]
    public static partial void OrphanedWalRemoved(this ILogger logger, string wal);

    [LoggerMessage(505, LogLevel.Error, "Could not remove the orphaned {Wal}; remove it before the next start: {Reason}")]
    public static partial void OrphanedWalNotRemoved(this ILogger logger, string wal, string reason);

    [LoggerMessage(506, LogLevel.Information, "State store {Path} writes recovered")]
    public static partial void WritesRecovered(this ILogger logger, string path);

    [LoggerMessage(507, LogLevel.Trace, "Committed {Count} writes in {Elapsed}")]
    public static partial void Committed(this ILogger logger, int count, TimeSpan elapsed);

    [LoggerMessage(508, LogLevel.Critical, "State store is unusable until the daemon reopens it: {Reason}")]
    public static partial void Unusable(this ILogger logger, string reason);

    [LoggerMessage(509, LogLevel.Error, "State store write failed; mail is refused until it recovers: {Reason}")]
    public static partial void WriteFailed(this ILogger logger, string reason);

    /// <summary>One line per tally written: how an admin sees floods that are counted instead of stored one row each.</summary>
    [LoggerMessage(510, LogLevel.Information, "tally uid={Uid} user={User} kind={Kind} outcome={Outcome} count={Count} from {First:O} to {Last:O}: {Description}")]
    public static partial void TallyWritten(this ILogger logger, uint uid, string user, string kind, string outcome, long count, DateTimeOffset first, DateTimeOffset last, string description);

    [LoggerMessage(512, LogLevel.Warning, "State store checkpoint failed (the WAL grows until one succeeds): {Reason}")]
    public static partial void CheckpointFailed(this ILogger logger, string reason);

    [LoggerMessage(513, LogLevel.Trace, "State store checkpoint beside the writer took {Elapsed}; {Left} WAL frames left for the next")]
    public static partial void CheckpointedBesideWriter(this ILogger logger, TimeSpan elapsed, uint left);

    [LoggerMessage(511, LogLevel.Debug, "tallies not written yet: {Reason}")]
    public static partial void TalliesNotWrittenYet(this ILogger logger, string reason);

    public static void TallyWritten(this ILogger logger, TallyEntry e) =>
        logger.TallyWritten(e.Uid, e.User, e.Kind, e.Outcome, e.Count, e.First, e.Last, e.Describe());
}
