using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

[TestFixture]
public class SqliteStateStoreTests
{
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task Open_creates_the_directory_with_mode_0750_and_the_database()
    {
        await using var store = _dir.Open();

        Assert.That(File.GetUnixFileMode(_dir.Path), Is.EqualTo((UnixFileMode)Convert.ToInt32("750", 8)));
        Assert.That(File.Exists(_dir.Database));
        Assert.That(store.Path, Is.EqualTo(_dir.Database));
    }

    [Test]
    public async Task A_read_runs_on_a_thread_of_its_own_and_holds_no_pool_thread()
    {
        // SQLite answers synchronously: a long read on a pool thread (the pruning's plan over a flood's day) starved the
        // store's write completions, which resume on the pool, and the sessions' commits waited as long.
        await using var store = _dir.Open();

        var onPool = await store.ReadAsync((_, _) => Task.FromResult(Thread.CurrentThread.IsThreadPoolThread), CancellationToken.None);

        Assert.That(onPool, Is.False);
    }

    [Test]
    public async Task Every_transaction_field_round_trips_including_outcome_and_process()
    {
        await using var store = _dir.Open();
        var withOffset = new DateTimeOffset(2030, 5, 1, 14, 0, 0, 123, TimeSpan.FromHours(2)).AddTicks(4567);
        var full = Records.Transaction("a", withOffset, uid: 4_000_000_000, outcome: TransactionOutcome.Rejected, recipients: 7, size: 5_000_000_000);
        var noProcess = Records.Transaction("b", Records.Base) with { Process = null, Outcome = TransactionOutcome.Pending };

        await store.RecordTransactionAsync(full, CancellationToken.None);
        await store.RecordTransactionAsync(noProcess, CancellationToken.None);
        var loaded = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);

        // Records compare instants, so the UTC value read back equals the +02:00 value written, to the tick.
        Assert.That(loaded, Is.EqualTo(new[] { full, noProcess }));
        Assert.That(loaded[0].Duration, Is.EqualTo(full.Duration));
    }

    [Test]
    public async Task Every_outcome_round_trips()
    {
        await using var store = _dir.Open();
        var outcomes = Enum.GetValues<TransactionOutcome>();
        for (var i = 0; i < outcomes.Length; i++)
        {
            await store.RecordTransactionAsync(Records.Transaction($"t{i}", Records.Base.AddSeconds(i), outcome: outcomes[i]), CancellationToken.None);
        }

        var loaded = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 100, CancellationToken.None);

        Assert.That(loaded.Select(t => t.Outcome).Reverse(), Is.EqualTo(outcomes));
    }

    [Test]
    public async Task Recording_the_same_id_again_replaces_pending_by_its_outcome()
    {
        await using var store = _dir.Open();
        var pending = Records.Transaction("x", Records.Base, outcome: TransactionOutcome.Pending) with { Reply = "" };
        var delivered = pending with { Outcome = TransactionOutcome.Delivered, Reply = "250 2.0.0 queued as 1234", Duration = TimeSpan.FromSeconds(2) };

        await store.RecordTransactionAsync(pending, CancellationToken.None);
        await store.RecordTransactionAsync(delivered, CancellationToken.None);

        Assert.That(await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None), Is.EqualTo(new[] { delivered }));
    }

    // The journal's row is written twice a message, its Pending row and then its outcome: the outcome must not name the
    // indexed columns, which SQLite would rewrite in both secondary indexes (and dirty their pages in the WAL) each time.
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

    [Test]
    public async Task Transactions_are_filtered_by_time_and_uid_newest_first_and_limited()
    {
        await using var store = _dir.Open();
        for (var i = 0; i < 10; i++)
        {
            await store.RecordTransactionAsync(Records.Transaction($"t{i}", Records.Base.AddMinutes(i), uid: i % 2 == 0 ? 1001u : 1002u), CancellationToken.None);
        }

        var since = Records.Base.AddMinutes(4);
        var all = await store.LoadTransactionsAsync(since, null, 100, CancellationToken.None);
        var user = await store.LoadTransactionsAsync(since, 1002, 100, CancellationToken.None);
        var limited = await store.LoadTransactionsAsync(since, null, 3, CancellationToken.None);
        var none = await store.LoadTransactionsAsync(since, 999, 100, CancellationToken.None);

        Assert.That(all.Select(t => t.Id), Is.EqualTo(new[] { "t9", "t8", "t7", "t6", "t5", "t4" }));
        Assert.That(user.Select(t => t.Id), Is.EqualTo(new[] { "t9", "t7", "t5" }));
        Assert.That(limited.Select(t => t.Id), Is.EqualTo(new[] { "t9", "t8", "t7" }));
        Assert.That(none, Is.Empty);
    }

    [Test]
    public async Task Refusals_round_trip_filtered_by_time_and_uid_newest_first()
    {
        await using var store = _dir.Open();
        var kinds = Enum.GetValues<RefusalKind>();
        var written = kinds.Select((kind, i) => Records.Refusal(Records.Base.AddSeconds(i), uid: 1001u + (uint)(i % 2), kind: kind)).ToList();
        foreach (var refusal in written)
        {
            await store.RecordRefusalAsync(refusal, CancellationToken.None);
        }

        var all = await store.LoadRefusalsAsync(DateTimeOffset.MinValue, null, CancellationToken.None);
        var recent = await store.LoadRefusalsAsync(Records.Base.AddSeconds(6), 1001, CancellationToken.None);

        Assert.That(all, Is.EqualTo(Enumerable.Reverse(written)));
        Assert.That(recent, Is.EqualTo(written.Skip(6).Where(r => r.Uid == 1001).Reverse()).And.Not.Empty);
    }

    [Test]
    public async Task Suspensions_are_saved_replaced_removed_and_loaded()
    {
        await using var store = _dir.Open();
        await store.SaveSuspensionAsync(Records.Suspension(1002, SuspensionSource.Automatic), CancellationToken.None);
        await store.SaveSuspensionAsync(Records.Suspension(1001), CancellationToken.None);
        var replaced = Records.Suspension(1002) with { Reason = "admin took over", Since = Records.Base.AddHours(1) };
        await store.SaveSuspensionAsync(replaced, CancellationToken.None);

        Assert.That(await store.LoadSuspensionsAsync(CancellationToken.None), Is.EqualTo(new[] { Records.Suspension(1001), replaced }));
        Assert.That(await store.RemoveSuspensionAsync(1001, CancellationToken.None), Is.True);
        Assert.That(await store.RemoveSuspensionAsync(1001, CancellationToken.None), Is.False);
        Assert.That(await store.LoadSuspensionsAsync(CancellationToken.None), Is.EqualTo(new[] { replaced }));
    }

    [Test]
    public async Task Everything_survives_closing_and_reopening()
    {
        var transaction = Records.Transaction("kept", Records.Base);
        var refusal = Records.Refusal(Records.Base);
        var suspension = Records.Suspension(1001);
        await using (var store = _dir.Open())
        {
            await store.RecordTransactionAsync(transaction, CancellationToken.None);
            await store.RecordRefusalAsync(refusal, CancellationToken.None);
            await store.SaveSuspensionAsync(suspension, CancellationToken.None);
        }

        Assert.That(File.Exists(_dir.Database + "-wal"), Is.False, "a clean close checkpoints and removes the WAL");
        await using var reopened = _dir.Open();

        Assert.That(await reopened.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None), Is.EqualTo(new[] { transaction }));
        Assert.That(await reopened.LoadRefusalsAsync(DateTimeOffset.MinValue, null, CancellationToken.None), Is.EqualTo(new[] { refusal }));
        Assert.That(await reopened.LoadSuspensionsAsync(CancellationToken.None), Is.EqualTo(new[] { suspension }));
    }

    [Test]
    public async Task Wal_and_synchronous_normal_are_in_effect_on_the_write_connection()
    {
        await using var store = _dir.Open();

        var journal = await store.RunOnWriterAsync(c => Scalar(c, "PRAGMA journal_mode;"));
        var synchronous = await store.RunOnWriterAsync(c => Scalar(c, "PRAGMA synchronous;"));
        var foreignKeys = await store.RunOnWriterAsync(c => Scalar(c, "PRAGMA foreign_keys;"));
        var busy = await store.RunOnWriterAsync(c => Scalar(c, "PRAGMA busy_timeout;"));
        var version = await store.RunOnWriterAsync(c => Scalar(c, "SELECT max(version) FROM schema_version;"));

        Assert.That(journal, Is.EqualTo("wal"));
        Assert.That(synchronous, Is.EqualTo(1L), "1 = NORMAL");
        Assert.That(foreignKeys, Is.EqualTo(1L));
        Assert.That(busy, Is.EqualTo(5000L));
        Assert.That(version, Is.EqualTo((long)Schema.CurrentVersion));
    }

    [Test]
    public async Task Prune_deletes_old_transactions_and_refusals_but_keeps_suspensions()
    {
        await using var store = _dir.Open();
        await Task.WhenAll(Enumerable.Range(0, 12_000).Select(i =>
            store.RecordTransactionAsync(Records.Transaction($"old{i}", Records.Base.AddDays(-2).AddSeconds(i)), CancellationToken.None)));
        await store.RecordTransactionAsync(Records.Transaction("new", Records.Base), CancellationToken.None);
        await store.RecordRefusalAsync(Records.Refusal(Records.Base.AddDays(-2)), CancellationToken.None);
        await store.RecordRefusalAsync(Records.Refusal(Records.Base), CancellationToken.None);
        await store.SaveSuspensionAsync(Records.Suspension(1001) with { Since = Records.Base.AddDays(-30) }, CancellationToken.None);

        await store.PruneAsync(Records.Base.AddDays(-1), Records.Base.AddDays(-1), CancellationToken.None);

        Assert.That((await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 100_000, CancellationToken.None)).Select(t => t.Id), Is.EqualTo(new[] { "new" }));
        Assert.That(await store.LoadRefusalsAsync(DateTimeOffset.MinValue, null, CancellationToken.None), Has.Count.EqualTo(1));
        Assert.That(await store.LoadSuspensionsAsync(CancellationToken.None), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Prune_keeps_transactions_the_quotas_may_still_count_but_not_the_refusals_beside_them()
    {
        // Sessions of up to two days against two days' retention: a row started three days ago may still count, while
        // refusals (which a customer can flood) count toward nothing after a restart and go at the retention's cut-off.
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("long", Records.Base.AddDays(-2.5)), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("gone", Records.Base.AddDays(-3.5)), CancellationToken.None);
        await store.RecordRefusalAsync(Records.Refusal(Records.Base.AddDays(-2.5)), CancellationToken.None);
        await store.RecordRefusalAsync(Records.Refusal(Records.Base), CancellationToken.None);
        store.CountTally(TallyEntry.One(Records.Base.AddDays(-2.5), 1001, "bob", TallyEntry.UnsentKindName(UnsentKind.MailRefused), "Refused", "555 5.5.4"));
        store.CountTally(TallyEntry.One(Records.Base, 1001, "bob", TallyEntry.UnsentKindName(UnsentKind.MailRefused), "Refused", "555 5.5.4"));
        await store.FlushTalliesAsync(CancellationToken.None);

        await store.PruneAsync(Records.Base.AddDays(-2), Records.Base.AddDays(-3), CancellationToken.None);

        Assert.That((await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Select(t => t.Id), Is.EqualTo(new[] { "long" }));
        Assert.That((await store.LoadRefusalsAsync(DateTimeOffset.MinValue, null, CancellationToken.None)).Select(r => r.Time), Is.EqualTo(new[] { Records.Base }));
        Assert.That((await store.LoadTalliesAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Select(t => t.Count), Is.EqualTo(new[] { 1L }));
    }

    [Test]
    public async Task Users_are_summarised_since_a_time_top_senders_first()
    {
        await using var store = _dir.Open();
        var t = Records.Base;
        await store.RecordTransactionAsync(Records.Transaction("old", t.AddHours(-2), uid: 1001), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("a1", t, uid: 1001, recipients: 3, size: 100), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("a2", t.AddMinutes(1), uid: 1001, recipients: 1, size: 50), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("a3", t.AddMinutes(2), uid: 1001, outcome: TransactionOutcome.Deferred), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("a4", t.AddMinutes(3), uid: 1001, outcome: TransactionOutcome.Pending), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("a5", t.AddMinutes(2), uid: 1001, outcome: TransactionOutcome.Held), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("b1", t, uid: 1002, outcome: TransactionOutcome.Rejected), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("b2", t.AddMinutes(1), uid: 1002, outcome: TransactionOutcome.Refused), CancellationToken.None);
        await store.RecordRefusalAsync(Records.Refusal(t.AddMinutes(5), uid: 1002), CancellationToken.None);
        await store.RecordRefusalAsync(Records.Refusal(t.AddMinutes(6), uid: 1003) with { User = "carol" }, CancellationToken.None);

        var users = await store.SummarizeUsersAsync(t, CancellationToken.None);

        Assert.That(users, Is.EqualTo(new[]
        {
            new UserActivity(1001, "user1001", Delivered: 2, DeliveredRecipients: 4, Pending: 1, Deferred: 1, Rejected: 0, Refused: 0, PolicyRefusals: 0, BytesDelivered: 150, LastActivity: t.AddMinutes(3)) { Held = 1 },
            new UserActivity(1002, "user1002", 0, 0, 0, 0, Rejected: 1, Refused: 1, PolicyRefusals: 1, 0, t.AddMinutes(5)),
            new UserActivity(1003, "carol", 0, 0, 0, 0, 0, 0, PolicyRefusals: 1, 0, t.AddMinutes(6)),
        }));
    }

    [Test]
    public async Task Summary_names_a_user_by_the_newest_name_of_the_uid()
    {
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("1", Records.Base) with { User = "oldname" }, CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("2", Records.Base.AddMinutes(1)) with { User = "newname" }, CancellationToken.None);

        var users = await store.SummarizeUsersAsync(DateTimeOffset.MinValue, CancellationToken.None);

        Assert.That(users.Single().User, Is.EqualTo("newname"));
    }

    [Test]
    public async Task Writes_and_reads_after_dispose_fail_as_unavailable()
    {
        var store = _dir.Open();
        await store.DisposeAsync();

        Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("late", Records.Base), CancellationToken.None));
        Assert.ThrowsAsync<StoreUnavailableException>(() => store.LoadSuspensionsAsync(CancellationToken.None));
    }

    [Test]
    public async Task A_malformed_record_is_rejected_before_it_can_fail_a_shared_batch()
    {
        await using var store = _dir.Open();

        Assert.Throws<ArgumentException>(() => store.RecordTransactionAsync(Records.Transaction("bad", Records.Base) with { Sender = null! }, CancellationToken.None));
        Assert.Throws<ArgumentException>(() => store.RecordRefusalAsync(Records.Refusal(Records.Base) with { Kind = (RefusalKind)99 }, CancellationToken.None));
    }

    private static object? Scalar(Microsoft.Data.Sqlite.SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
