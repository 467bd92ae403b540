using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Interceptor.Store;

/// <summary>
/// A statement prepared once on the write connection and run through SQLite's own calls: values bound by position, text
/// handed over as the string's own UTF-16. Microsoft.Data.Sqlite looks each parameter up by name on every run, boxes
/// every number and encodes every string into a new array; for the journal's row, written twice a message, its binding
/// was a tenth of everything the daemon allocated under load (tests/bench/run, issue 19). Errors surface as the
/// <see cref="SqliteException"/> a command would throw, so the writer's failure handling sees no difference.
/// </summary>
/// <remarks>
/// The writer runs these inside its own BEGIN IMMEDIATE, so SQLITE_BUSY cannot meet them there; Microsoft.Data.Sqlite's
/// retry on a busy statement is not needed and not reproduced.
/// </remarks>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    /// <param name="parameters">The statement's parameters in the order of their positions (1, 2, …), checked here.</param>
    public RawStatement(SqliteConnection connection, string sql, params string[] parameters)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("the write connection is not open");
        SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(_db, sql, out _statement), _db);
        var count = raw.sqlite3_bind_parameter_count(_statement);
        for (var position = 1; position <= Math.Max(count, parameters.Length); position++)
        {
            var name = position <= count ? raw.sqlite3_bind_parameter_name(_statement, position).utf8_to_string() : null;
            if (position > parameters.Length || name != parameters[position - 1])
            {
                _statement.Dispose();
                throw new InvalidOperationException(
                    $"parameter {position} of \"{sql}\" is {name ?? "missing"}, not {(position > parameters.Length ? "expected" : parameters[position - 1])}");
            }
        }
    }

    public void Bind(int position, long value) =>
        SqliteException.ThrowExceptionForRC(raw.sqlite3_bind_int64(_statement, position, value), _db);

    // An empty string is bound through the string overload: SQLitePCLRaw before 2.1.12 passed an empty span as a null
    // pointer, which SQLite stores as NULL, and the journal's NOT NULL columns hold empty texts (MAIL FROM:<>).
    public void Bind(int position, string? value) =>
        SqliteException.ThrowExceptionForRC(
            value switch
            {
                null => raw.sqlite3_bind_null(_statement, position),
                "" => raw.sqlite3_bind_text(_statement, position, ""),
                _ => raw.sqlite3_bind_text16(_statement, position, value.AsSpan()),
            },
            _db);

    /// <summary>Runs the statement to its end, then readies it for the next values; the rows it changed.</summary>
    public int Run()
    {
        try
        {
            var rc = raw.sqlite3_step(_statement);
            if (rc == raw.SQLITE_ROW)
            {
                throw new SqliteException("a statement run for its changes returned a row", raw.SQLITE_MISUSE);
            }

            // Read the message before the reset below replaces the connection's error state.
            SqliteException.ThrowExceptionForRC(rc == raw.SQLITE_DONE ? raw.SQLITE_OK : rc, _db);

            return raw.sqlite3_changes(_db);
        }
        finally
        {
            raw.sqlite3_reset(_statement);
        }
    }

    public void Dispose() => _statement.Dispose();
}
