using Interceptor.Core.Events;
using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>What rows the size cap may delete, in the order it tries them.</summary>
public enum PruneTier
{
    /// <summary>Rows older than the quota window (the last day): nothing the quotas need.</summary>
    BeyondQuotaWindow,

    /// <summary>
    /// Rows of the last day that no quota counts (refusals, tallies, transactions not possibly sent), those of the user
    /// with the most of them first.
    /// </summary>
    NotCountedByQuotas,

    /// <summary>Anything, oldest first, the last day's deliveries included: the quotas of the last day lose history.</summary>
    QuotaHistory,
}

/// <summary>One enforcement of the size cap: what it found and what it did.</summary>
/// <param name="UsedBefore">Bytes in use (the database's used pages) before pruning.</param>
/// <param name="UsedAfter">Bytes in use after pruning.</param>
/// <param name="Limit">The limit that applied: State.MaxBytes, lowered when the filesystem ran short of State.MinFreeBytes.</param>
/// <param name="RowsDeleted">Transactions, refusals and tallies deleted.</param>
/// <param name="DeepestTier">The last tier that had to be pruned; <see cref="PruneTier.QuotaHistory"/> means the quotas of the last day lost history.</param>
/// <param name="OldestKept">The oldest row still in the store, if any.</param>
public sealed record PruneReport(long UsedBefore, long UsedAfter, long Limit, long RowsDeleted, PruneTier DeepestTier, DateTimeOffset? OldestKept)
{
    /// <summary>Whose rows of the last day that no quota counts were deleted, in order ("uid 1002 (bob)"): the log names them.</summary>
    public IReadOnlyList<string> PrunedUsers { get; init; } = [];

    public bool QuotaHistoryLost => DeepestTier == PruneTier.QuotaHistory && RowsDeleted > 0;
}

/// <summary>
/// The size cap's arithmetic and SQL. Pages freed by a delete are reused by SQLite, so keeping the used pages under the
/// cap keeps the file from growing; pruning goes below the cap (to <see cref="TargetFraction"/> of it) so a flood does
/// not make it prune on every check.
/// </summary>
public static class StoreBudget
{
    /// <summary>Pruning stops once the used bytes are at or below this share of the limit.</summary>
    public const double TargetFraction = 0.8;

    /// <summary>Fewest and most rows one delete takes (one writer batch each, between live writes).</summary>
    public const int MinChunk = 100;

    /// <summary>
    /// The outcomes the quotas count (<see cref="TransactionEvent.CountsAsSent"/>, the one definition), as an SQL list: the
    /// quota history reads these rows. Declared before <see cref="NotCountedByQuotas"/>: static fields start in order.
    /// </summary>
    internal static readonly string CountedOutcomes =
        string.Join(", ", Enum.GetValues<TransactionOutcome>().Where(TransactionEvent.CountsAsSent).Select(o => $"'{o}'"));

    /// <summary>The SQL condition on a transaction row that no quota counts, so that pruning never takes a row the quotas need.</summary>
    internal static readonly string NotCountedByQuotas = $"outcome NOT IN ({CountedOutcomes})";

    public const int MaxChunk = 20_000;

    /// <summary>Below the free-space floor, the share of the file's pages that may be in use before it prunes.</summary>
    public const double FullFileFraction = 0.95;

    /// <summary>
    /// The limit in force: the cap, lowered so that the filesystem keeps <paramref name="minFreeBytes"/> free. Against the
    /// file's allocated pages, not its used ones: a delete gives no disk back (its pages stay in the file for new rows), so
    /// what matters to the filesystem is only whether the file would have to grow. Below the floor it must not grow at all:
    /// the limit is then nearly the whole file, so the store prunes only as its free pages run out, never below what it
    /// holds for nothing (against the used bytes, every delete lowered the limit as much, and a disk another process kept
    /// short emptied the store). Free space that cannot be read (<see cref="long.MaxValue"/>) counts as plenty.
    /// </summary>
    public static long Limit(long maxBytes, long allocatedBytes, long freeBytes, long minFreeBytes)
    {
        var room = freeBytes - minFreeBytes;
        var disk = room < 0 ? (long)(allocatedBytes * FullFileFraction)
            : allocatedBytes > long.MaxValue - room ? long.MaxValue
            : allocatedBytes + room;
        return Math.Min(maxBytes, disk);
    }

    /// <summary>
    /// The deepest tier pruning may reach. The last day's deliveries, which the quotas count (also after a restart,
    /// rebuilt from the store), go only for the cap itself: never because the disk ran short, which deleting rows does not
    /// mend and which another user's files may cause.
    /// </summary>
    public static PruneTier DeepestTier(long maxBytes, long usedBytes) =>
        usedBytes > maxBytes ? PruneTier.QuotaHistory : PruneTier.NotCountedByQuotas;

    /// <summary>Where pruning stops once it started.</summary>
    public static long Target(long limit) => (long)(limit * TargetFraction);

    /// <summary>
    /// How many rows to delete to get from <paramref name="usedBytes"/> to <paramref name="targetBytes"/>, taking the
    /// average row (with its share of the indexes) as <paramref name="usedBytes"/> / <paramref name="rows"/>; 0 when
    /// nothing needs to go. Bounded to one chunk; the caller measures again and repeats.
    /// </summary>
    public static int RowsToDelete(long usedBytes, long targetBytes, long rows)
    {
        if (usedBytes <= targetBytes || rows <= 0)
        {
            return 0;
        }

        var bytesPerRow = (double)usedBytes / rows;
        var needed = (long)Math.Ceiling((usedBytes - targetBytes) / bytesPerRow);
        return (int)Math.Min(rows, Math.Clamp(needed, MinChunk, MaxChunk));
    }

    /// <summary>The database file's pages, the free list included: what it takes on disk.</summary>
    internal static long AllocatedBytes(SqliteConnection connection) =>
        Convert.ToInt64(Schema.Scalar(connection, "PRAGMA page_count;"), System.Globalization.CultureInfo.InvariantCulture)
        * Convert.ToInt64(Schema.Scalar(connection, "PRAGMA page_size;"), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The database's used bytes: its pages minus the free list (what the cap is about).</summary>
    internal static long UsedBytes(SqliteConnection connection)
    {
        var pages = Convert.ToInt64(Schema.Scalar(connection, "PRAGMA page_count;"), System.Globalization.CultureInfo.InvariantCulture);
        var free = Convert.ToInt64(Schema.Scalar(connection, "PRAGMA freelist_count;"), System.Globalization.CultureInfo.InvariantCulture);
        var size = Convert.ToInt64(Schema.Scalar(connection, "PRAGMA page_size;"), System.Globalization.CultureInfo.InvariantCulture);
        return (pages - free) * size;
    }

    internal static long RowCount(SqliteConnection connection) => Convert.ToInt64(
        Schema.Scalar(connection, "SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM refusals) + (SELECT count(*) FROM tallies);"),
        System.Globalization.CultureInfo.InvariantCulture);

    internal static DateTimeOffset? OldestRow(SqliteConnection connection) =>
        Schema.Scalar(connection, "SELECT min(t) FROM (SELECT min(started) AS t FROM transactions UNION ALL SELECT min(time) FROM refusals UNION ALL SELECT min(period) FROM tallies);") is long ticks
            ? new DateTimeOffset(ticks, TimeSpan.Zero)
            : null;

    /// <summary>
    /// Deletes about <paramref name="rows"/> of the oldest rows the tier allows, across the three tables (oldest first
    /// overall, not per table); returns how many went. <paramref name="quotaWindowStart"/> is the start of the last day.
    /// <see cref="PruneTier.NotCountedByQuotas"/> goes by user instead (<see cref="StoreContributor"/>), so it never comes here.
    /// </summary>
    internal static int DeleteOldest(SqliteConnection connection, PruneTier tier, int rows, DateTimeOffset quotaWindowStart)
    {
        var (transactions, refusals, tallies) = tier switch
        {
            PruneTier.BeyondQuotaWindow => ("started < $window", "time < $window", "period < $window"),
            _ => ("1", "1", "1"),
        };

        // The time of the rows-th oldest candidate: everything up to it goes (ties may take a few more).
        long? cutoff;
        using (var command = connection.CreateCommand())
        {
            command.CommandText = $"""
                SELECT t FROM (SELECT started AS t FROM transactions WHERE {transactions}
                               UNION ALL SELECT time FROM refusals WHERE {refusals}
                               UNION ALL SELECT period FROM tallies WHERE {tallies})
                ORDER BY t LIMIT 1 OFFSET $offset;
                """;
            command.Parameters.AddWithValue("$window", quotaWindowStart.UtcTicks);
            command.Parameters.AddWithValue("$offset", Math.Max(0, rows - 1));
            cutoff = command.ExecuteScalar() as long?;
        }

        var deleted = 0;
        foreach (var (table, column, condition) in new[] { ("transactions", "started", transactions), ("refusals", "time", refusals), ("tallies", "period", tallies) })
        {
            using var delete = connection.CreateCommand();
            delete.CommandText = $"DELETE FROM {table} WHERE ({condition}) AND {column} <= $cutoff;";
            delete.Parameters.AddWithValue("$window", quotaWindowStart.UtcTicks);
            delete.Parameters.AddWithValue("$cutoff", cutoff ?? long.MaxValue);
            deleted += delete.ExecuteNonQuery();
        }

        return deleted;
    }
}
