using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>
/// Connection settings and the schema, as numbered migrations that run once each inside a transaction, so a newer
/// daemon upgrades an older file in place and an older daemon refuses a newer file instead of misreading it.
/// </summary>
/// <remarks>
/// Times are stored as UTC ticks (100 ns units since 0001-01-01, <see cref="DateTimeOffset.UtcTicks"/>) so an instant
/// round-trips exactly and sorts as an integer; the view transactions_readable shows them as text for an admin at
/// the sqlite3 prompt. Enums are stored by name so the file reads without this code.
/// </remarks>
internal static class Schema
{
    /// <summary>How long a write waits for another process's lock (an admin's sqlite3 session) before it fails.</summary>
    public const int BusyTimeoutMilliseconds = 5000;

    private static readonly string[] Migrations =
    [
        // v1
        """
        CREATE TABLE transactions (
            id                   TEXT    NOT NULL PRIMARY KEY,
            started              INTEGER NOT NULL,
            uid                  INTEGER NOT NULL,
            user_name            TEXT    NOT NULL,
            sender               TEXT    NOT NULL,
            recipient_count      INTEGER NOT NULL,
            size_bytes           INTEGER NOT NULL,
            original_destination TEXT    NOT NULL,
            upstream             TEXT    NOT NULL,
            reply                TEXT    NOT NULL,
            duration             INTEGER NOT NULL,
            outcome              TEXT    NOT NULL,
            process              TEXT
        );
        CREATE INDEX transactions_uid_started ON transactions (uid, started);
        CREATE INDEX transactions_started ON transactions (started);

        CREATE TABLE refusals (
            id        INTEGER PRIMARY KEY,
            time      INTEGER NOT NULL,
            uid       INTEGER NOT NULL,
            user_name TEXT    NOT NULL,
            kind      TEXT    NOT NULL,
            detail    TEXT    NOT NULL
        );
        CREATE INDEX refusals_uid_time ON refusals (uid, time);
        CREATE INDEX refusals_time ON refusals (time);

        CREATE TABLE suspensions (
            uid       INTEGER NOT NULL PRIMARY KEY,
            user_name TEXT    NOT NULL,
            reason    TEXT    NOT NULL,
            since     INTEGER NOT NULL,
            source    TEXT    NOT NULL
        );

        CREATE VIEW transactions_readable AS
            SELECT id,
                   strftime('%Y-%m-%d %H:%M:%f', started / 10000000.0 - 62135596800, 'unixepoch') AS started_utc,
                   uid, user_name, sender, recipient_count, size_bytes, original_destination, upstream, reply,
                   duration / 10000 AS duration_ms, outcome, process
            FROM transactions;
        """,

        // v2: transactions that ended before DATA and connection-cap refusals, counted per user, kind and minute
        // (a flood of them was a row each and could fill the disk).
        """
        CREATE TABLE tallies (
            period    INTEGER NOT NULL,
            uid       INTEGER NOT NULL,
            user_name TEXT    NOT NULL,
            kind      TEXT    NOT NULL,
            outcome   TEXT    NOT NULL,
            count     INTEGER NOT NULL,
            first     INTEGER NOT NULL,
            last      INTEGER NOT NULL,
            detail    TEXT    NOT NULL,
            PRIMARY KEY (uid, kind, outcome, period)
        );
        CREATE INDEX tallies_period ON tallies (period);
        """,

        // v3: the relay pool's state (issue 15), one row per relay and one for the host ('@host', Auto mode), so a
        // restart brings no burned relay back. evidence holds the last few burn lines, newline-separated.
        """
        CREATE TABLE relay_states (
            name                 TEXT    NOT NULL PRIMARY KEY,
            status               TEXT    NOT NULL,
            position             INTEGER NOT NULL,
            used                 INTEGER NOT NULL,
            since                INTEGER NOT NULL,
            consecutive_failures INTEGER NOT NULL,
            down_until           INTEGER,
            burned_since         INTEGER,
            reason               TEXT    NOT NULL,
            evidence             TEXT    NOT NULL,
            clean_checks         INTEGER NOT NULL,
            last_dnsbl           TEXT    NOT NULL,
            last_dnsbl_at        INTEGER
        );
        """,
    ];

    /// <summary>The schema version this code writes.</summary>
    public static int CurrentVersion => Migrations.Length;

    /// <summary>Per-connection settings of the one write connection.</summary>
    public static void ConfigureWriter(SqliteConnection connection)
    {
        // WAL lets readers run beside the writer. NORMAL: a commit is in the WAL (the kernel's page cache) when its task
        // completes, so it survives the daemon being killed at any point; the WAL is fsynced at checkpoints, so a power cut
        // or kernel crash can lose the last seconds of records (uncounted quota), never corrupt the file. FULL fsynced
        // every commit: ~11% of the daemon's CPU per relayed message on tests/bench/run, for accounting data.
        // journal_mode is persistent in the file, the others are per connection.
        var mode = Scalar(connection, "PRAGMA journal_mode = WAL;") as string;
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"the filesystem does not support WAL mode (journal_mode is {mode})");
        }

        Execute(connection, $"""
            PRAGMA synchronous = NORMAL;
            PRAGMA foreign_keys = ON;
            PRAGMA busy_timeout = {BusyTimeoutMilliseconds};
            PRAGMA journal_size_limit = {64 * 1024 * 1024};
            """);
    }

    /// <summary>Brings the file to <see cref="CurrentVersion"/>; returns the version it had.</summary>
    public static int Migrate(SqliteConnection connection, DateTimeOffset now)
    {
        Execute(connection, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL);");
        var found = Convert.ToInt32(Scalar(connection, "SELECT coalesce(max(version), 0) FROM schema_version;"), System.Globalization.CultureInfo.InvariantCulture);
        if (found > CurrentVersion)
        {
            throw new InvalidOperationException(
                $"the database has schema version {found}, newer than this daemon's {CurrentVersion}; run the newer daemon or move the file away");
        }

        for (var version = found + 1; version <= CurrentVersion; version++)
        {
            Execute(connection, "BEGIN IMMEDIATE;");
            try
            {
                Execute(connection, Migrations[version - 1]);
                Execute(connection, $"INSERT INTO schema_version (version, applied) VALUES ({version}, {now.UtcTicks});");
                Execute(connection, "COMMIT;");
            }
            catch
            {
                // A failed statement may have ended the transaction already; the original error is the one to report.
                try
                {
                    Execute(connection, "ROLLBACK;");
                }
                catch (SqliteException)
                {
                }

                throw;
            }
        }

        return found;
    }

    public static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    public static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
