using Interceptor.Core.Policy;
using Interceptor.Store;
using Microsoft.Data.Sqlite;

namespace Interceptor.Tests.Store;

[TestFixture]
public class StoreFailureTests
{
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    [Test]
    public async Task A_read_whose_thread_cannot_start_fails_as_the_store_unavailable()
    {
        // Every read runs on a thread of its own: a process out of threads or memory gets TaskSchedulerException from the
        // scheduler, which the admin's command must see as the store's error, not as an unhandled exception.
        await using var store = _dir.Open();

        var error = Assert.ThrowsAsync<StoreUnavailableException>(() =>
            store.ReadAsync<int>((_, _) => throw new TaskSchedulerException(new OutOfMemoryException("no thread left")), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain(_dir.Database).And.Contain("no thread for the read (no thread left)"));
    }

    [Test]
    public async Task Deleting_the_database_under_a_running_store_fails_every_later_write_until_reopened()
    {
        var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("before", Records.Base), CancellationToken.None);

        File.Delete(_dir.Database);
        var first = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None));
        var second = Assert.ThrowsAsync<StoreUnavailableException>(() => store.SaveSuspensionAsync(Records.Suspension(1001), CancellationToken.None));

        Assert.That(first!.Message, Does.Contain(_dir.Database).And.Contain("deleted"));
        Assert.That(second!.Message, Is.EqualTo(first.Message));
        Assert.That(store.Health.Broken);
        Assert.ThrowsAsync<StoreUnavailableException>(() => store.LoadSuspensionsAsync(CancellationToken.None));
        await store.DisposeAsync();

        await using var reopened = _dir.Open();
        await reopened.RecordTransactionAsync(Records.Transaction("fresh", Records.Base), CancellationToken.None);
        Assert.That(await reopened.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Replacing_the_database_file_under_a_running_store_fails_writes_and_leaves_the_new_file_intact()
    {
        await using (var first = _dir.Open())
        {
            await first.RecordTransactionAsync(Records.Transaction("checkpointed", Records.Base), CancellationToken.None);
        }

        var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("only-in-wal", Records.Base), CancellationToken.None);
        // What restoring a backup over the live file does: a new inode at the same path.
        File.Copy(_dir.Database, _dir.Database + ".copy");
        File.Move(_dir.Database + ".copy", _dir.Database, overwrite: true);

        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None));
        Assert.That(failure!.Message, Does.Contain("replaced"));
        await store.DisposeAsync();

        // The old inode's WAL must not be replayed into the new file, which opens with exactly its own content.
        await using var reopened = _dir.Open();
        Assert.That((await reopened.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Select(t => t.Id), Is.EqualTo(new[] { "checkpointed" }));
        Assert.That(await reopened.RunOnWriterAsync(c => Scalar(c, "PRAGMA integrity_check;")), Is.EqualTo("ok"));
    }

    [Test]
    public async Task Every_write_of_a_failed_batch_faults_and_the_store_recovers_when_the_cause_goes()
    {
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("seed", Records.Base), CancellationToken.None);
        // Capping the file at its current size is how SQLite reports a full disk without filling one. A lone write can
        // still fit in the free space of the pages it has (f0 alone does), so the writer is held until all 200 are queued:
        // they then go as one batch, which needs new pages and must fail as a whole.
        using var writerHeld = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var hold = store.RunOnWriterAsync(c =>
        {
            Execute(c, "PRAGMA max_page_count = 1;");
            writerHeld.Set();
            return release.Wait(TimeSpan.FromSeconds(30));
        });
        Assert.That(writerHeld.Wait(TimeSpan.FromSeconds(30)), "the writer never ran the capping batch");

        var writes = Enumerable.Range(0, 200)
            .Select(i => store.RecordTransactionAsync(Records.Transaction($"f{i}", Records.Base.AddSeconds(i)) with { Reply = new string('x', 2000) }, CancellationToken.None))
            .ToList();
        release.Set();
        Assert.That(await hold, "the writer was released by the timeout, not by the test");
        var outcome = await Task.WhenAll(writes).ContinueWith(t => t, TaskScheduler.Default);

        Assert.That(writes.All(w => w.IsFaulted && w.Exception!.InnerException is StoreUnavailableException));
        Assert.That(writes.Select(w => w.Exception!.InnerException).Distinct().Count(), Is.EqualTo(1), "the writes were not one batch");
        Assert.That(writes[0].Exception!.InnerException!.Message, Does.Contain("full").And.Contain(_dir.Database));
        Assert.That(outcome.IsFaulted);
        Assert.That(store.Health.LastFailure, Does.Contain("full"));

        await store.RunOnWriterAsync(c => Execute(c, "PRAGMA max_page_count = 1073741823;"));
        await store.RecordTransactionAsync(Records.Transaction("recovered", Records.Base), CancellationToken.None);
        Assert.That((await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 1000, CancellationToken.None)).Select(t => t.Id), Is.EquivalentTo(new[] { "seed", "recovered" }));
        Assert.That(store.Health.LastFailure, Is.Null);
    }

    [Test]
    public async Task A_database_made_read_only_fails_writes_until_it_is_writable_again()
    {
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("before", Records.Base), CancellationToken.None);
        var readOnly = UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        var original = File.GetUnixFileMode(_dir.Database);

        File.SetUnixFileMode(_dir.Database, readOnly);
        File.SetUnixFileMode(_dir.Database + "-wal", readOnly);
        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("during", Records.Base), CancellationToken.None));

        Assert.That(failure!.Message, Does.Contain("read-only").And.Contain(_dir.Database));
        File.SetUnixFileMode(_dir.Database, original);
        File.SetUnixFileMode(_dir.Database + "-wal", original);
        await store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None);
    }

    [Test]
    public async Task A_directory_made_read_only_fails_writes()
    {
        await using var store = _dir.Open();
        File.SetUnixFileMode(_dir.Path, UnixFileMode.UserRead | UnixFileMode.UserExecute);

        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("during", Records.Base), CancellationToken.None));

        Assert.That(failure!.Message, Does.Contain("read-only").And.Contain(_dir.Path));
    }

    [Test]
    public async Task An_immutable_wal_fails_writes_even_for_root()
    {
        Assume.That(Chattr.IsRoot, "chattr +i needs CAP_LINUX_IMMUTABLE (root); the chmod tests cover non-root");
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("before", Records.Base), CancellationToken.None);
        Assume.That(Chattr.TryRun("+i", _dir.Database + "-wal"), "this filesystem does not support chattr +i");
        try
        {
            var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("during", Records.Base), CancellationToken.None));
            Assert.That(failure!.Message, Does.Contain("I/O error").And.Contain(_dir.Database));
        }
        finally
        {
            Chattr.TryRun("-i", _dir.Database + "-wal");
        }

        await store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None);
        Assert.That(await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None), Has.Count.EqualTo(2));
    }

    [Test]
    public void Open_fails_on_a_directory_without_write_permission()
    {
        Directory.CreateDirectory(_dir.Path);
        File.SetUnixFileMode(_dir.Path, UnixFileMode.UserRead | UnixFileMode.UserExecute);

        var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());

        Assert.That(failure!.Message, Does.Contain(_dir.Database).And.Contain("read-only"));
    }

    [Test]
    public void Open_fails_on_an_immutable_directory_even_for_root()
    {
        Assume.That(Chattr.IsRoot, "chattr +i needs root; the chmod test covers non-root");
        Directory.CreateDirectory(_dir.Path);
        Assume.That(Chattr.TryRun("+i", _dir.Path), "this filesystem does not support chattr +i");

        var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());

        Assert.That(failure!.Message, Does.Contain(_dir.Database).And.Contain("cannot create files"));
    }

    [Test]
    public async Task Open_fails_on_a_read_only_database_file()
    {
        await using (var store = _dir.Open())
        {
            await store.RecordTransactionAsync(Records.Transaction("kept", Records.Base), CancellationToken.None);
        }

        File.SetUnixFileMode(_dir.Database, UnixFileMode.UserRead | UnixFileMode.GroupRead);

        var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());

        Assert.That(failure!.Message, Does.Contain(_dir.Database).And.Contain("read-only"));
    }

    [Test]
    public void Open_fails_on_a_corrupt_file_naming_the_cause()
    {
        Directory.CreateDirectory(_dir.Path);
        File.WriteAllBytes(_dir.Database, Enumerable.Repeat((byte)0x5a, 8192).ToArray());

        var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());

        Assert.That(failure!.Message, Does.Contain(_dir.Database).And.Contain("not an SQLite database"));
    }

    [Test]
    public void Open_fails_when_the_directory_is_a_file()
    {
        File.WriteAllText(_dir.Path, "not a directory");
        try
        {
            var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());
            Assert.That(failure!.Message, Does.Contain("is a file, not a directory"));
        }
        finally
        {
            File.Delete(_dir.Path);
        }
    }

    [Test]
    public void Open_refuses_a_leftover_wal_without_its_database()
    {
        Directory.CreateDirectory(_dir.Path);
        File.WriteAllText(_dir.Database + "-wal", "frames of a deleted database");

        var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());

        Assert.That(failure!.Message, Does.Contain("write-ahead log"));
    }

    [Test]
    public async Task Open_refuses_a_database_from_a_newer_version()
    {
        await using (var store = _dir.Open())
        {
            await store.RunOnWriterAsync(c => Execute(c, "INSERT INTO schema_version (version, applied) VALUES (99, 0);"));
        }

        var failure = Assert.Throws<StoreUnavailableException>(() => _dir.Open());

        Assert.That(failure!.Message, Does.Contain("schema version 99"));
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static int Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteNonQuery();
    }
}
