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
    // The rows no quota counts, each with its uid, time and estimated size. length() of a BLOB counts bytes (of TEXT it
    // would count characters, and a U+FFFD from a bad byte takes three).
    private static readonly string Uncounted = $"""
        SELECT uid, user_name, started AS t,
               64 + length(CAST(id AS BLOB)) + length(CAST(user_name AS BLOB)) + length(CAST(sender AS BLOB))
                  + length(CAST(original_destination AS BLOB)) + length(CAST(upstream AS BLOB)) + length(CAST(reply AS BLOB))
                  + coalesce(length(CAST(process AS BLOB)), 0) AS bytes
        FROM transactions WHERE {StoreBudget.NotCountedByQuotas}
        UNION ALL SELECT uid, user_name, time, 32 + length(CAST(user_name AS BLOB)) + length(CAST(kind AS BLOB)) + length(CAST(detail AS BLOB))
        FROM refusals
        UNION ALL SELECT uid, user_name, period, 64 + length(CAST(user_name AS BLOB)) + length(CAST(kind AS BLOB))
                                                    + length(CAST(outcome AS BLOB)) + length(CAST(detail AS BLOB))
        FROM tallies
        """;

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

    /// <summary>Deletes her oldest uncounted rows worth <see cref="Excess"/> (through the uid indexes); returns how many went.</summary>
    public int DeleteExcess(SqliteConnection connection)
    {
        long? cutoff;
        using (var command = connection.CreateCommand())
        {
            // The time at which her oldest rows add up to the excess: those up to it go (ties may take a few more).
            command.CommandText = $"""
                SELECT t FROM (SELECT t, sum(bytes) OVER (ORDER BY t ROWS UNBOUNDED PRECEDING) AS running
                               FROM ({Uncounted}) WHERE uid = $uid)
                WHERE running >= $excess ORDER BY t LIMIT 1;
                """;
            command.Parameters.AddWithValue("$uid", Uid);
            command.Parameters.AddWithValue("$excess", Excess);
            cutoff = command.ExecuteScalar() as long?;
        }

        // Her excess is never more than her share, so a cutoff is found; without one (rows deleted meanwhile) nothing goes.
        if (cutoff is null)
        {
            return 0;
        }

        var deleted = 0;
        foreach (var (table, column, condition) in new[]
                 {
                     ("transactions", "started", StoreBudget.NotCountedByQuotas),
                     ("refusals", "time", "1"),
                     ("tallies", "period", "1"),
                 })
        {
            using var delete = connection.CreateCommand();
            delete.CommandText = $"DELETE FROM {table} WHERE uid = $uid AND {column} <= $cutoff AND ({condition});";
            delete.Parameters.AddWithValue("$uid", Uid);
            delete.Parameters.AddWithValue("$cutoff", cutoff.Value);
            deleted += delete.ExecuteNonQuery();
        }

        return deleted;
    }

    public override string ToString() => $"uid {Uid} ({User})";
}
