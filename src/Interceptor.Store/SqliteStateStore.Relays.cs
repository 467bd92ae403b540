using Interceptor.Core.Pool;
using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>The relay pool's state (issue 15): one row per relay and one for the host, written on every change.</summary>
public sealed partial class SqliteStateStore
{
    /// <summary>Inserts or replaces the rows of <paramref name="states"/> in one commit (a burn and its promotion together).</summary>
    public Task SaveRelayStatesAsync(IReadOnlyList<RelayState> states, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(states);
        foreach (var state in states)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(state.Name);
        }

        return states.Count == 0 ? Task.CompletedTask : _writer.EnqueueAsync(s => UpsertRelayStates(s.Connection, states), cancellationToken);
    }

    /// <summary>Every saved relay state, by name.</summary>
    public Task<IReadOnlyList<RelayState>> LoadRelayStatesAsync(CancellationToken cancellationToken) =>
        ReadAsync(RelayStatesAsync, cancellationToken);

    private static int UpsertRelayStates(SqliteConnection connection, IReadOnlyList<RelayState> states)
    {
        // A pool changes a few times a day: a statement per call costs nothing worth preparing for.
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT OR REPLACE INTO relay_states (name, status, position, used, since, consecutive_failures, down_until,
                burned_since, reason, evidence, clean_checks, last_dnsbl, last_dnsbl_at)
            VALUES ($name, $status, $position, $used, $since, $failures, $down, $burned, $reason, $evidence, $clean, $dnsbl, $dnsblAt);
            """;
        var written = 0;
        foreach (var state in states)
        {
            command.Parameters.Clear();
            command.Parameters.AddWithValue("$name", state.Name);
            command.Parameters.AddWithValue("$status", state.Status.ToString());
            command.Parameters.AddWithValue("$position", state.Order);
            command.Parameters.AddWithValue("$used", state.Used ? 1 : 0);
            command.Parameters.AddWithValue("$since", state.Since.UtcTicks);
            command.Parameters.AddWithValue("$failures", state.ConsecutiveFailures);
            command.Parameters.AddWithValue("$down", (object?)state.DownUntil?.UtcTicks ?? DBNull.Value);
            command.Parameters.AddWithValue("$burned", (object?)state.BurnedSince?.UtcTicks ?? DBNull.Value);
            command.Parameters.AddWithValue("$reason", state.Reason);
            command.Parameters.AddWithValue("$evidence", string.Join('\n', state.Evidence.Select(e => e.ReplaceLineEndings(" "))));
            command.Parameters.AddWithValue("$clean", state.CleanChecks);
            command.Parameters.AddWithValue("$dnsbl", state.LastDnsbl);
            command.Parameters.AddWithValue("$dnsblAt", (object?)state.LastDnsblAt?.UtcTicks ?? DBNull.Value);
            written += command.ExecuteNonQuery();
        }

        return written;
    }

    private static async Task<IReadOnlyList<RelayState>> RelayStatesAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT name, status, position, used, since, consecutive_failures, down_until, burned_since, reason, evidence,
                   clean_checks, last_dnsbl, last_dnsbl_at
            FROM relay_states ORDER BY name;
            """;
        var list = new List<RelayState>();
        using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            DateTimeOffset? OptionalTime(int column) => reader.IsDBNull(column) ? null : StoreQueries.Time(reader.GetInt64(column));
            var evidence = reader.GetString(9);
            list.Add(new RelayState
            {
                Name = reader.GetString(0),
                Status = StoreQueries.Parse<RelayStatus>(reader.GetString(1), "relay status"),
                Order = reader.GetInt32(2),
                Used = reader.GetInt64(3) != 0,
                Since = StoreQueries.Time(reader.GetInt64(4)),
                ConsecutiveFailures = reader.GetInt32(5),
                DownUntil = OptionalTime(6),
                BurnedSince = OptionalTime(7),
                Reason = reader.GetString(8),
                Evidence = evidence.Length == 0 ? [] : evidence.Split('\n'),
                CleanChecks = reader.GetInt32(10),
                LastDnsbl = reader.GetString(11),
                LastDnsblAt = OptionalTime(12),
            });
        }

        return list;
    }
}
