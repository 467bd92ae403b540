using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>
/// The write connection's statements, prepared once: at thousands of rows per second, parsing SQL per row would cost
/// more than the inserts. Used only by the writer thread.
/// </summary>
internal sealed class WriteStatements : IDisposable
{
    /// <summary>
    /// The journal's row: its Pending row, then its outcome under the same id. The outcome leaves <c>started</c> and
    /// <c>uid</c> as the Pending row wrote them (they are the same transaction's, from the same session): SQLite
    /// rewrites every index on a column a SET names, changed or not, and these two are the table's secondary indexes,
    /// so naming them cost each outcome's commit two index deletes and inserts and the WAL pages they dirtied.
    /// The row keeps its start, so its duration is set for it to end where the outcome's event ends, and never earlier
    /// than it did: <see cref="Interceptor.Core.Policy.QuotaHistory"/> counts it there after a restart. For a session's
    /// outcome, whose start is the Pending row's, that is the event's duration. A release (HoldAccounting) starts at the
    /// hold time, stamped before the hold's record was written and charged: over a Held row, the row keeps the Held
    /// outcome's later end; over a row still Pending (the Held outcome's write lost), it ends at the hold.
    /// </summary>
    internal const string UpsertTransactionSql = """
        INSERT INTO transactions (id, started, uid, user_name, sender, recipient_count, size_bytes,
                                  original_destination, upstream, reply, duration, outcome, process)
        VALUES ($id, $started, $uid, $user, $sender, $recipients, $size, $destination, $upstream, $reply,
                $duration, $outcome, $process)
        ON CONFLICT (id) DO UPDATE SET
            user_name = excluded.user_name, sender = excluded.sender, recipient_count = excluded.recipient_count,
            size_bytes = excluded.size_bytes, original_destination = excluded.original_destination,
            upstream = excluded.upstream, reply = excluded.reply,
            duration = max(transactions.duration, excluded.started + excluded.duration - transactions.started),
            outcome = excluded.outcome, process = excluded.process;
        """;

    /// <summary>Rows one prune statement deletes, so a large retention sweep never holds the writer for long.</summary>
    public const int PruneChunk = 5000;

    private readonly List<SqliteCommand> _all = [];
    private readonly SqliteCommand _begin;
    private readonly SqliteCommand _commit;
    private readonly SqliteCommand _rollback;
    private readonly RawStatement _upsertTransaction;
    private readonly SqliteCommand _insertRefusal;
    private readonly SqliteCommand _upsertSuspension;
    private readonly SqliteCommand _deleteSuspension;
    private readonly SqliteCommand _pruneTransactions;
    private readonly SqliteCommand _pruneRefusals;
    private readonly SqliteCommand _pruneTallies;
    private readonly SqliteCommand _upsertTally;

    public WriteStatements(SqliteConnection connection)
    {
        Connection = connection;
        // IMMEDIATE takes the write lock up front, so a competing process makes BEGIN wait, not a later statement.
        _begin = Create("BEGIN IMMEDIATE;");
        _commit = Create("COMMIT;");
        _rollback = Create("ROLLBACK;");
        _upsertTransaction = new RawStatement(
            connection, UpsertTransactionSql,
            "$id", "$started", "$uid", "$user", "$sender", "$recipients", "$size", "$destination", "$upstream",
            "$reply", "$duration", "$outcome", "$process");
        _insertRefusal = Create(
            "INSERT INTO refusals (time, uid, user_name, kind, detail) VALUES ($time, $uid, $user, $kind, $detail);",
            "$time", "$uid", "$user", "$kind", "$detail");
        _upsertSuspension = Create(
            """
            INSERT INTO suspensions (uid, user_name, reason, since, source) VALUES ($uid, $user, $reason, $since, $source)
            ON CONFLICT (uid) DO UPDATE SET user_name = excluded.user_name, reason = excluded.reason,
                                            since = excluded.since, source = excluded.source;
            """,
            "$uid", "$user", "$reason", "$since", "$source");
        _deleteSuspension = Create("DELETE FROM suspensions WHERE uid = $uid;", "$uid");
        _pruneTransactions = Create(
            $"DELETE FROM transactions WHERE rowid IN (SELECT rowid FROM transactions WHERE started < $before LIMIT {PruneChunk});",
            "$before");
        _pruneRefusals = Create(
            $"DELETE FROM refusals WHERE rowid IN (SELECT rowid FROM refusals WHERE time < $before LIMIT {PruneChunk});",
            "$before");
        _pruneTallies = Create(
            $"DELETE FROM tallies WHERE rowid IN (SELECT rowid FROM tallies WHERE period < $before LIMIT {PruneChunk});",
            "$before");
        _upsertTally = Create(
            """
            INSERT INTO tallies (period, uid, user_name, kind, outcome, count, first, last, detail)
            VALUES ($period, $uid, $user, $kind, $outcome, $count, $first, $last, $detail)
            ON CONFLICT (uid, kind, outcome, period) DO UPDATE SET
                count = count + excluded.count,
                first = min(first, excluded.first),
                last = max(last, excluded.last),
                detail = CASE WHEN excluded.last >= last THEN excluded.detail ELSE detail END,
                user_name = CASE WHEN excluded.last >= last THEN excluded.user_name ELSE user_name END;
            """,
            "$period", "$uid", "$user", "$kind", "$outcome", "$count", "$first", "$last", "$detail");
    }

    public SqliteConnection Connection { get; }

    public void Begin() => _begin.ExecuteNonQuery();

    public void Commit() => _commit.ExecuteNonQuery();

    /// <summary>Best effort: after I/O or disk-full errors SQLite has usually rolled back already.</summary>
    public void TryRollback()
    {
        try
        {
            _rollback.ExecuteNonQuery();
        }
        catch (SqliteException)
        {
        }
        catch (InvalidOperationException)
        {
        }
    }

    public int UpsertTransaction(TransactionEvent t)
    {
        var s = _upsertTransaction;
        s.Bind(1, t.Id);
        s.Bind(2, t.Started.UtcTicks);
        s.Bind(3, t.Uid);
        s.Bind(4, t.User);
        s.Bind(5, t.Sender);
        s.Bind(6, t.RecipientCount);
        s.Bind(7, t.SizeBytes);
        s.Bind(8, t.OriginalDestination);
        s.Bind(9, t.Upstream);
        s.Bind(10, t.Reply);
        s.Bind(11, t.Duration.Ticks);
        s.Bind(12, t.Outcome.ToString());
        s.Bind(13, t.Process);
        return s.Run();
    }

    public int InsertRefusal(PolicyRefusal r)
    {
        var p = _insertRefusal.Parameters;
        p[0].Value = r.Time.UtcTicks;
        p[1].Value = (long)r.Uid;
        p[2].Value = r.User;
        p[3].Value = r.Kind.ToString();
        p[4].Value = r.Detail;
        return _insertRefusal.ExecuteNonQuery();
    }

    public int UpsertTally(TallyEntry t)
    {
        var p = _upsertTally.Parameters;
        p[0].Value = t.Period.UtcTicks;
        p[1].Value = (long)t.Uid;
        p[2].Value = t.User;
        p[3].Value = t.Kind;
        p[4].Value = t.Outcome;
        p[5].Value = t.Count;
        p[6].Value = t.First.UtcTicks;
        p[7].Value = t.Last.UtcTicks;
        p[8].Value = t.Detail;
        return _upsertTally.ExecuteNonQuery();
    }

    public int UpsertSuspension(Suspension s)
    {
        var p = _upsertSuspension.Parameters;
        p[0].Value = (long)s.Uid;
        p[1].Value = s.User;
        p[2].Value = s.Reason;
        p[3].Value = s.Since.UtcTicks;
        p[4].Value = s.Source.ToString();
        return _upsertSuspension.ExecuteNonQuery();
    }

    public int DeleteSuspension(uint uid)
    {
        _deleteSuspension.Parameters[0].Value = (long)uid;
        return _deleteSuspension.ExecuteNonQuery();
    }

    /// <summary>Deletes up to <see cref="PruneChunk"/> transactions, as many refusals and tallies older than their cut-offs.</summary>
    public int PruneChunkBefore(DateTimeOffset before, DateTimeOffset transactionsBefore)
    {
        _pruneTransactions.Parameters[0].Value = transactionsBefore.UtcTicks;
        _pruneRefusals.Parameters[0].Value = before.UtcTicks;
        _pruneTallies.Parameters[0].Value = before.UtcTicks;
        return Math.Max(Math.Max(_pruneTransactions.ExecuteNonQuery(), _pruneRefusals.ExecuteNonQuery()), _pruneTallies.ExecuteNonQuery());
    }

    public void Dispose()
    {
        foreach (var command in _all)
        {
            command.Dispose();
        }

        _upsertTransaction.Dispose();
    }

    private SqliteCommand Create(string sql, params string[] parameters)
    {
        var command = Connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        _all.Add(command);
        return command;
    }
}
