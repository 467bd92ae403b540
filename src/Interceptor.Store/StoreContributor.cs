using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>
/// The user whose rows of the last day that no quota counts take the most room in the store, and the room the next
/// user's take: whose rows the disk's pruning deletes first (<see cref="PruneTier.NotCountedByQuotas"/>).
/// </summary>
/// <param name="Bytes">An estimate: the rows' text plus a fixed overhead a row. Ranked by room, not by rows, so a user
/// cannot make her rows fewer but longer (a long MAIL FROM) to have someone else's deleted first.</param>
internal readonly record struct StoreContributor(long Uid, string User, long Rows, long Bytes, long NextBytes)
{
    /// <summary>How many of her rows bring her down to the next user's share (at least <paramref name="minimum"/>).</summary>
    public int RowsAboveNext(int minimum)
    {
        var perRow = Math.Max(1, Bytes / Math.Max(1, Rows));
        var above = (Bytes - NextBytes + perRow - 1) / perRow;
        return (int)Math.Clamp(above, minimum, int.MaxValue);
    }

    /// <summary>The largest contributor among the rows <paramref name="transactions"/> selects (and every refusal and tally row); null when there are none.</summary>
    public static StoreContributor? Largest(SqliteConnection connection, string transactions)
    {
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT uid, max(user_name), count(*), sum(bytes) FROM (
                SELECT uid, user_name, 64 + length(id) + length(user_name) + length(sender) + length(original_destination)
                                       + length(upstream) + length(reply) + coalesce(length(process), 0) AS bytes
                FROM transactions WHERE {transactions}
                UNION ALL SELECT uid, user_name, 32 + length(user_name) + length(kind) + length(detail) FROM refusals
                UNION ALL SELECT uid, user_name, 64 + length(user_name) + length(kind) + length(outcome) + length(detail) FROM tallies)
            GROUP BY uid ORDER BY 4 DESC, uid LIMIT 2;
            """;
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var (uid, user, rows, bytes) = (reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3));
        var next = reader.Read() ? reader.GetInt64(3) : 0;
        return new StoreContributor(uid, user, rows, bytes, next);
    }

    public override string ToString() => $"uid {Uid} ({User})";
}
