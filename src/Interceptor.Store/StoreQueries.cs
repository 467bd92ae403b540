using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>The read side: SQL and row mapping, run on a pooled read-only connection (WAL readers never block the writer).</summary>
internal static class StoreQueries
{
    private const string TransactionColumns =
        "id, started, uid, user_name, sender, recipient_count, size_bytes, original_destination, upstream, reply, duration, outcome, process";

    public static async Task<IReadOnlyList<TransactionEvent>> TransactionsAsync(
        SqliteConnection connection, DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        // Two texts rather than "$uid IS NULL OR uid = $uid", which would keep SQLite from using the (uid, started) index.
        command.CommandText = uid is null
            ? $"SELECT {TransactionColumns} FROM transactions WHERE started >= $since ORDER BY started DESC, rowid DESC LIMIT $limit;"
            : $"SELECT {TransactionColumns} FROM transactions WHERE uid = $uid AND started >= $since ORDER BY started DESC, rowid DESC LIMIT $limit;";
        command.Parameters.AddWithValue("$since", since.UtcTicks);
        command.Parameters.AddWithValue("$limit", limit);
        if (uid is { } u)
        {
            command.Parameters.AddWithValue("$uid", (long)u);
        }

        var list = new List<TransactionEvent>();
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new TransactionEvent(
                Id: reader.GetString(0),
                Started: Time(reader.GetInt64(1)),
                Uid: Uid(reader.GetInt64(2)),
                User: reader.GetString(3),
                Sender: reader.GetString(4),
                RecipientCount: reader.GetInt32(5),
                SizeBytes: reader.GetInt64(6),
                OriginalDestination: reader.GetString(7),
                Upstream: reader.GetString(8),
                Reply: reader.GetString(9),
                Duration: TimeSpan.FromTicks(reader.GetInt64(10)))
            {
                Outcome = Parse<TransactionOutcome>(reader.GetString(11), "outcome"),
                Process = reader.IsDBNull(12) ? null : reader.GetString(12),
            });
        }

        return list;
    }

    public static async Task<IReadOnlyList<QuotaCharge>> ChargesAsync(
        SqliteConnection connection, DateTimeOffset since, DateTimeOffset endedSince, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText =
            "SELECT uid, started, duration, recipient_count, outcome FROM transactions " +
            $"WHERE started >= $since AND outcome IN ({StoreBudget.CountedOutcomes}) AND (outcome = 'Pending' OR started + duration >= $endedSince);";
        command.Parameters.AddWithValue("$since", since.UtcTicks);
        command.Parameters.AddWithValue("$endedSince", endedSince.UtcTicks);
        var list = new List<QuotaCharge>();
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new QuotaCharge(
                Uid(reader.GetInt64(0)), Time(reader.GetInt64(1)), TimeSpan.FromTicks(reader.GetInt64(2)), reader.GetInt32(3),
                Parse<TransactionOutcome>(reader.GetString(4), "outcome")));
        }

        return list;
    }

    public static async Task<IReadOnlyList<PolicyRefusal>> RefusalsAsync(
        SqliteConnection connection, DateTimeOffset since, uint? uid, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = uid is null
            ? "SELECT time, uid, user_name, kind, detail FROM refusals WHERE time >= $since ORDER BY time DESC, id DESC;"
            : "SELECT time, uid, user_name, kind, detail FROM refusals WHERE uid = $uid AND time >= $since ORDER BY time DESC, id DESC;";
        command.Parameters.AddWithValue("$since", since.UtcTicks);
        if (uid is { } u)
        {
            command.Parameters.AddWithValue("$uid", (long)u);
        }

        var list = new List<PolicyRefusal>();
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new PolicyRefusal(
                Time(reader.GetInt64(0)),
                Uid(reader.GetInt64(1)),
                reader.GetString(2),
                Parse<RefusalKind>(reader.GetString(3), "refusal kind"),
                reader.GetString(4)));
        }

        return list;
    }

    public static async Task<IReadOnlyList<TallyEntry>> TalliesAsync(
        SqliteConnection connection, DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = uid is null
            ? "SELECT period, uid, user_name, kind, outcome, count, first, last, detail FROM tallies WHERE last >= $since ORDER BY last DESC LIMIT $limit;"
            : "SELECT period, uid, user_name, kind, outcome, count, first, last, detail FROM tallies WHERE uid = $uid AND last >= $since ORDER BY last DESC LIMIT $limit;";
        command.Parameters.AddWithValue("$since", since.UtcTicks);
        command.Parameters.AddWithValue("$limit", limit);
        if (uid is { } u)
        {
            command.Parameters.AddWithValue("$uid", (long)u);
        }

        var list = new List<TallyEntry>();
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new TallyEntry(
                Time(reader.GetInt64(0)), Uid(reader.GetInt64(1)), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.GetInt64(5), Time(reader.GetInt64(6)), Time(reader.GetInt64(7)), reader.GetString(8)));
        }

        return list;
    }

    public static async Task<IReadOnlyList<Suspension>> SuspensionsAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT uid, user_name, reason, since, source FROM suspensions ORDER BY uid;";
        var list = new List<Suspension>();
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            list.Add(new Suspension(
                Uid(reader.GetInt64(0)),
                reader.GetString(1),
                reader.GetString(2),
                Time(reader.GetInt64(3)),
                Parse<SuspensionSource>(reader.GetString(4), "suspension source")));
        }

        return list;
    }

    public static async Task<IReadOnlyList<UserActivity>> UsersAsync(SqliteConnection connection, DateTimeOffset since, CancellationToken cancellationToken)
    {
        var users = new Dictionary<uint, UserActivity>();
        using (var command = connection.CreateCommand())
        {
            // SQLite takes the bare column user_name from the row that max(started) picked: the newest name of the uid.
            command.CommandText = """
                SELECT uid, user_name, max(started),
                       sum(outcome = 'Delivered'),
                       coalesce(sum(CASE WHEN outcome = 'Delivered' THEN recipient_count END), 0),
                       sum(outcome IN ('Pending', 'Unknown')), sum(outcome = 'Deferred'), sum(outcome = 'Rejected'),
                       sum(outcome = 'Refused'),
                       coalesce(sum(CASE WHEN outcome = 'Delivered' THEN size_bytes END), 0),
                       sum(outcome = 'Held')
                FROM transactions WHERE started >= $since GROUP BY uid;
                """;
            command.Parameters.AddWithValue("$since", since.UtcTicks);
            using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var uid = Uid(reader.GetInt64(0));
                users[uid] = new UserActivity(
                    uid, reader.GetString(1), Count(reader, 3), Count(reader, 4), Count(reader, 5), Count(reader, 6),
                    Count(reader, 7), Count(reader, 8), PolicyRefusals: 0, Count(reader, 9), Time(reader.GetInt64(2)))
                {
                    Held = Count(reader, 10),
                };
            }
        }

        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT uid, user_name, max(time), count(*) FROM refusals WHERE time >= $since GROUP BY uid;";
            command.Parameters.AddWithValue("$since", since.UtcTicks);
            using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var uid = Uid(reader.GetInt64(0));
                var last = Time(reader.GetInt64(2));
                var refusals = reader.GetInt64(3);
                users[uid] = users.TryGetValue(uid, out var known)
                    ? known with
                    {
                        PolicyRefusals = refusals,
                        User = last > known.LastActivity ? reader.GetString(1) : known.User,
                        LastActivity = last > known.LastActivity ? last : known.LastActivity,
                    }
                    : new UserActivity(uid, reader.GetString(1), 0, 0, 0, 0, 0, 0, refusals, 0, last);
            }
        }

        using (var command = connection.CreateCommand())
        {
            // Tallied transactions (ended before DATA) count by their outcome; tallied refusals (connection cap) as refusals.
            command.CommandText = """
                SELECT uid, user_name, max(last),
                       coalesce(sum(CASE WHEN kind LIKE 'Unsent.%' AND outcome = 'Deferred' THEN count END), 0),
                       coalesce(sum(CASE WHEN kind LIKE 'Unsent.%' AND outcome = 'Rejected' THEN count END), 0),
                       coalesce(sum(CASE WHEN kind LIKE 'Unsent.%' AND outcome NOT IN ('Deferred', 'Rejected') THEN count END), 0),
                       coalesce(sum(CASE WHEN kind NOT LIKE 'Unsent.%' THEN count END), 0)
                FROM tallies WHERE last >= $since GROUP BY uid;
                """;
            command.Parameters.AddWithValue("$since", since.UtcTicks);
            using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var uid = Uid(reader.GetInt64(0));
                var last = Time(reader.GetInt64(2));
                var known = users.TryGetValue(uid, out var k) ? k : new UserActivity(uid, reader.GetString(1), 0, 0, 0, 0, 0, 0, 0, 0, last);
                users[uid] = known with
                {
                    Deferred = known.Deferred + Count(reader, 3),
                    Rejected = known.Rejected + Count(reader, 4),
                    Refused = known.Refused + Count(reader, 5),
                    PolicyRefusals = known.PolicyRefusals + Count(reader, 6),
                    User = last > known.LastActivity ? reader.GetString(1) : known.User,
                    LastActivity = last > known.LastActivity ? last : known.LastActivity,
                };
            }
        }

        // Top senders first, as the `users` command shows them.
        return [.. users.Values
            .OrderByDescending(u => u.Delivered + u.Pending)
            .ThenByDescending(u => u.PolicyRefusals + u.Refused + u.Rejected + u.Deferred)
            .ThenBy(u => u.Uid)];
    }

    internal static DateTimeOffset Time(long utcTicks) => new(utcTicks, TimeSpan.Zero);

    private static uint Uid(long value) => value is >= 0 and <= uint.MaxValue
        ? (uint)value
        : throw new InvalidDataException($"uid {value} out of range");

    private static long Count(SqliteDataReader reader, int ordinal) => reader.GetInt64(ordinal);

    internal static TEnum Parse<TEnum>(string text, string what)
        where TEnum : struct, Enum =>
        // Only the exact name round-trips; TryParse alone would also take numbers and stray spaces.
        Enum.TryParse<TEnum>(text, ignoreCase: false, out var value) && string.Equals(value.ToString(), text, StringComparison.Ordinal)
            ? value
            : throw new InvalidDataException($"unknown {what} '{text}' in the database");
}
