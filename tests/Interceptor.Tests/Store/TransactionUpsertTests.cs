using Interceptor.Core.Events;
using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

/// <summary>
/// The journal's row is written twice a message, its Pending row and then its outcome: the outcome must not name the
/// indexed columns, which SQLite would rewrite in both secondary indexes (and dirty their pages in the WAL) each time.
/// </summary>
[TestFixture]
public sealed class TransactionUpsertTests
{
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public void The_outcome_rewrites_no_secondary_index()
    {
        using var connection = new SqliteConnection("Data Source=:memory:");
        connection.Open();
        Schema.Migrate(connection, Records.Base);
        using var explain = connection.CreateCommand();
        explain.CommandText = "EXPLAIN " + WriteStatements.UpsertTransactionSql;
        foreach (var name in new[] { "$id", "$started", "$uid", "$user", "$sender", "$recipients", "$size", "$destination", "$upstream", "$reply", "$duration", "$outcome", "$process" })
        {
            explain.Parameters.AddWithValue(name, DBNull.Value);
        }

        var opcodes = new List<string>();
        using (var rows = explain.ExecuteReader())
        {
            while (rows.Read())
            {
                opcodes.Add(rows.GetString(1));
            }
        }

        // The insert adds the row and its entries in the primary key's and both secondary indexes; the update replaces
        // the row alone. With started and uid in the SET list the update also deleted and re-inserted both index entries.
        Assert.That(opcodes.Count(o => o == "IdxDelete"), Is.Zero, string.Join(' ', opcodes));
        Assert.That(opcodes.Count(o => o == "IdxInsert"), Is.EqualTo(3), string.Join(' ', opcodes));
    }

    [Test]
    public async Task An_outcome_keeps_the_start_and_uid_its_pending_row_was_indexed_under()
    {
        // They are the same transaction's in every outcome the daemon writes; one that said otherwise changes the rest.
        await using var store = _dir.Open();
        var pending = Records.Transaction("x", Records.Base, uid: 1001, outcome: TransactionOutcome.Pending) with { Reply = "" };
        var outcome = Records.Transaction("x", Records.Base.AddMinutes(5), uid: 1002, outcome: TransactionOutcome.Delivered) with { Reply = "250 2.0.0 queued as 1234" };

        await store.RecordTransactionAsync(pending, CancellationToken.None);
        await store.RecordTransactionAsync(outcome, CancellationToken.None);

        var row = (await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Single();
        Assert.That((row.Started, row.Uid), Is.EqualTo((Records.Base, 1001u)));
        Assert.That((row.Outcome, row.Reply), Is.EqualTo((TransactionOutcome.Delivered, "250 2.0.0 queued as 1234")));
        Assert.That(await store.LoadTransactionsAsync(DateTimeOffset.MinValue, 1001, 10, CancellationToken.None), Has.Count.EqualTo(1), "found by its uid's index");
    }
}
