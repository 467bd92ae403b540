using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>
/// One user's share of the rows of the last day that no quota counts, and how much of it a pass deletes: the disk's
/// pruning (<see cref="PruneTier.NotCountedByQuotas"/>) takes from the users whose rows take the most room, down to a
/// common level, so a customer flooding the store with refusals pays for her flood and nobody else's records go for it.
/// </summary>
/// <param name="Bytes">The room her rows take, estimated (the bytes of their text plus a fixed overhead a row).</param>
/// <param name="Excess">How much of it this pass deletes, oldest first: what she has above the level.</param>
internal readonly record struct StoreContributor(long Uid, string User, long Bytes, long Excess)
{
    /// <summary>The most rows <see cref="DeleteOldest"/> takes in one writer job: about 12 ms of the writer (400,000 rows measured).</summary>
    public const int RowsPerJob = 5_000;

    // The rows no quota counts, each with its uid, time and estimated size. length() of a BLOB counts bytes (of TEXT it
    // would count characters, and a U+FFFD from a bad byte takes three).
    private static readonly string UncountedTransactions = $"""
        SELECT uid, user_name, started AS t,
               64 + length(CAST(id AS BLOB)) + length(CAST(user_name AS BLOB)) + length(CAST(sender AS BLOB))
                  + length(CAST(original_destination AS BLOB)) + length(CAST(upstream AS BLOB)) + length(CAST(reply AS BLOB))
                  + coalesce(length(CAST(process AS BLOB)), 0) AS bytes
        FROM transactions WHERE ({StoreBudget.NotCountedByQuotas})
        """;

    private const string UncountedRefusals = """
        SELECT uid, user_name, time AS t, 32 + length(CAST(user_name AS BLOB)) + length(CAST(kind AS BLOB)) + length(CAST(detail AS BLOB)) AS bytes
        FROM refusals
        """;

    private const string UncountedTallies = """
        SELECT uid, user_name, period AS t, 64 + length(CAST(user_name AS BLOB)) + length(CAST(kind AS BLOB))
                                              + length(CAST(outcome AS BLOB)) + length(CAST(detail AS BLOB)) AS bytes
        FROM tallies
        """;

    private static readonly string Uncounted = $"{UncountedTransactions} UNION ALL {UncountedRefusals} UNION ALL {UncountedTallies}";

    /// <summary>
    /// Who loses how much to free about <paramref name="neededBytes"/>: the level L where the shares above it add up to
    /// the need (water-filling from the top); everyone above L is cut to L. Largest first; empty when there is nothing.
    /// </summary>
    public static IReadOnlyList<StoreContributor> Plan(SqliteConnection connection, long neededBytes)
    {
        var shares = new List<(long Uid, string User, long Bytes)>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = $"SELECT uid, max(user_name), sum(bytes) FROM ({Uncounted}) GROUP BY uid ORDER BY 3 DESC, uid;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                shares.Add((reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2)));
            }
        }

        var level = Level([.. shares.Select(s => s.Bytes)], neededBytes);
        return [.. shares.Where(s => s.Bytes > level).Select(s => new StoreContributor(s.Uid, s.User, s.Bytes, s.Bytes - level))];
    }

    /// <summary>The highest level whose excess (the shares' sum above it) covers <paramref name="needed"/>; 0 when all of it does not.</summary>
    /// <param name="shares">Largest first.</param>
    internal static long Level(IReadOnlyList<long> shares, long needed)
    {
        // Walk down the shares: between shares[i] and shares[i+1] the excess grows by (i+1) per byte the level falls.
        long above = 0;
        for (var i = 0; i < shares.Count; i++)
        {
            var next = i + 1 < shares.Count ? shares[i + 1] : 0;
            var room = (shares[i] - next) * (i + 1);
            if (above + room >= needed)
            {
                // Fall from shares[i] by just enough (rounded up, so the excess covers the need).
                var fall = (needed - above + i) / (i + 1);
                return Math.Max(0, shares[i] - fall);
            }

            above += room;
        }

        return 0;
    }

    /// <summary>
    /// Deletes her oldest uncounted rows after <paramref name="after"/> until they add up to <paramref name="bytes"/>
    /// (estimated as in the plan; the row that crosses it goes too, and every row of the same time), at most
    /// <paramref name="maxRows"/> of them but for such ties, through the uid indexes. One writer job each: a flood's share
    /// may be millions of rows, and one job for all of them held the writer for seconds while every session's pending row
    /// waited (and was refused, a failure of ours). Returns the rows deleted, their bytes (ties beyond a table's chunk go
    /// uncounted: only more of hers goes) and the time they go up to, where the next chunk starts.
    /// </summary>
    public (int Rows, long Bytes, long Cutoff) DeleteOldest(SqliteConnection connection, long bytes, long after, int maxRows)
    {
        // Her oldest rows of each table, merged in time order, until they add up to the bytes or the chunk is full.
        var oldest = new List<(long Time, long Bytes)>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = $"""
                SELECT t, bytes FROM ({UncountedTransactions} AND uid = $uid AND started > $after ORDER BY t LIMIT $max)
                UNION ALL SELECT t, bytes FROM ({UncountedRefusals} WHERE uid = $uid AND time > $after ORDER BY t LIMIT $max)
                UNION ALL SELECT t, bytes FROM ({UncountedTallies} WHERE uid = $uid AND period > $after ORDER BY t LIMIT $max);
                """;
            command.Parameters.AddWithValue("$uid", Uid);
            command.Parameters.AddWithValue("$after", after);
            command.Parameters.AddWithValue("$max", maxRows);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                oldest.Add((reader.GetInt64(0), reader.GetInt64(1)));
            }
        }

        oldest.Sort();
        long? cutoff = null;
        long planned = 0;
        for (var i = 0; i < oldest.Count && i < maxRows && planned < bytes; i++)
        {
            (cutoff, planned) = (oldest[i].Time, planned + oldest[i].Bytes);
        }

        // Nothing left of hers (rows deleted meanwhile): nothing goes.
        if (cutoff is null)
        {
            return (0, 0, after);
        }

        // Rows of the cut-off's time past maxRows go too, and count (those past a table's LIMIT go uncounted).
        var gone = oldest.Where(r => r.Time <= cutoff).Sum(r => r.Bytes);
        var deleted = 0;
        foreach (var (table, column, condition) in new[]
                 {
                     ("transactions", "started", StoreBudget.NotCountedByQuotas),
                     ("refusals", "time", "1"),
                     ("tallies", "period", "1"),
                 })
        {
            using var delete = connection.CreateCommand();
            delete.CommandText = $"DELETE FROM {table} WHERE uid = $uid AND {column} > $after AND {column} <= $cutoff AND ({condition});";
            delete.Parameters.AddWithValue("$uid", Uid);
            delete.Parameters.AddWithValue("$after", after);
            delete.Parameters.AddWithValue("$cutoff", cutoff.Value);
            deleted += delete.ExecuteNonQuery();
        }

        return (deleted, gone, cutoff.Value);
    }

    public override string ToString() => $"uid {Uid} ({User})";
}
