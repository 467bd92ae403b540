using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

public sealed class RawStatementTests
{
    private SqliteConnection _connection = null!;

    [SetUp]
    public void Open()
    {
        _connection = new SqliteConnection("Data Source=:memory:");
        _connection.Open();
        using var create = _connection.CreateCommand();
        create.CommandText = "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL, note TEXT);";
        create.ExecuteNonQuery();
    }

    [TearDown]
    public void Close() => _connection.Dispose();

    [Test]
    public void Values_bound_by_position_are_stored_as_given_and_the_statement_runs_again()
    {
        using var insert = new RawStatement(_connection, "INSERT INTO t (id, n, note) VALUES ($id, $n, $note);", "$id", "$n", "$note");
        insert.Bind(1, "ümlaut ✉ id");
        insert.Bind(2, long.MaxValue);
        insert.Bind(3, (string?)null);
        Assert.That(insert.Run(), Is.EqualTo(1));
        insert.Bind(1, "second");
        insert.Bind(2, -1);
        insert.Bind(3, "");
        Assert.That(insert.Run(), Is.EqualTo(1));

        using var read = _connection.CreateCommand();
        read.CommandText = "SELECT id, n, note IS NULL, typeof(note) FROM t ORDER BY rowid;";
        using var rows = read.ExecuteReader();
        Assert.That(rows.Read(), Is.True);
        Assert.That((rows.GetString(0), rows.GetInt64(1), rows.GetBoolean(2)), Is.EqualTo(("ümlaut ✉ id", long.MaxValue, true)));
        Assert.That(rows.Read(), Is.True);
        Assert.That((rows.GetString(0), rows.GetInt64(1), rows.GetString(3)), Is.EqualTo(("second", -1L, "text")));
    }

    [Test]
    public void A_failed_run_throws_what_a_command_would_and_leaves_the_statement_usable()
    {
        using var insert = new RawStatement(_connection, "INSERT INTO t (id, n) VALUES ($id, $n);", "$id", "$n");
        insert.Bind(1, "a");
        insert.Bind(2, 1);
        insert.Run();

        var failure = Assert.Throws<SqliteException>(() => insert.Run())!;
        Assert.That(failure.SqliteErrorCode, Is.EqualTo(19)); // SQLITE_CONSTRAINT
        Assert.That(failure.Message, Does.Contain("UNIQUE constraint failed: t.id"));

        insert.Bind(1, "b");
        Assert.That(insert.Run(), Is.EqualTo(1));
    }

    [Test]
    public void A_statement_that_returns_a_row_is_refused_when_run()
    {
        using var select = new RawStatement(_connection, "SELECT $x;", "$x");
        select.Bind(1, 1);

        var failure = Assert.Throws<SqliteException>(() => select.Run())!;
        Assert.That(failure.Message, Is.EqualTo("a statement run for its changes returned a row"));
    }

    [TestCase("$id", "$note")]
    [TestCase("$id")]
    [TestCase("$id", "$n", "$extra")]
    public void Parameters_listed_out_of_the_statements_order_are_refused_when_prepared(params string[] parameters)
    {
        var failure = Assert.Throws<InvalidOperationException>(
            () => new RawStatement(_connection, "INSERT INTO t (id, n) VALUES ($id, $n);", parameters))!;
        Assert.That(failure.Message, Does.StartWith("parameter "));
    }

    [Test]
    public void A_statement_SQLite_cannot_prepare_is_refused_with_its_message()
    {
        var failure = Assert.Throws<SqliteException>(() => new RawStatement(_connection, "INSERT INTO nowhere VALUES (1);"))!;
        Assert.That(failure.Message, Does.Contain("no such table: nowhere"));
    }
}
