using Interceptor.Core.Policy;
using Interceptor.Store;

namespace Interceptor.Tests.Store;

/// <summary>
/// The quick check before a commit (<see cref="StoreFileCheck"/>): taken only while the directory's time is the settled
/// one a full check saw, and it still sees every breakage the full check does. The directory's time is set back by hand
/// so that a test need not wait for it to settle.
/// </summary>
[TestFixture]
public class StoreFileCheckTests
{
    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private async Task<SqliteStateStore> OpenSettledAsync()
    {
        var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("seed", Records.Base), CancellationToken.None);
        Directory.SetLastWriteTimeUtc(_dir.Path, DateTime.UtcNow - TimeSpan.FromMinutes(1));

        // One commit makes the full check that trusts the settled time; the next ones take the quick check.
        await store.RecordTransactionAsync(Records.Transaction("settle", Records.Base), CancellationToken.None);
        var full = store.FullFileChecks;
        await store.RecordTransactionAsync(Records.Transaction("quick-1", Records.Base), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("quick-2", Records.Base), CancellationToken.None);
        Assert.That(store.FullFileChecks, Is.EqualTo(full), "commits under a settled directory take the quick check");
        return store;
    }

    [Test]
    public async Task A_recently_changed_directory_gets_the_full_check_on_every_commit()
    {
        await using var store = _dir.Open();
        await store.RecordTransactionAsync(Records.Transaction("a", Records.Base), CancellationToken.None);
        Directory.SetLastWriteTimeUtc(_dir.Path, DateTime.UtcNow);
        var full = store.FullFileChecks;

        await store.RecordTransactionAsync(Records.Transaction("b", Records.Base), CancellationToken.None);
        await store.RecordTransactionAsync(Records.Transaction("c", Records.Base), CancellationToken.None);

        Assert.That(store.FullFileChecks, Is.EqualTo(full + 2), "a time that may still change within its tick is not trusted");
    }

    [Test]
    public async Task Deleting_the_database_after_the_quick_check_was_trusted_still_fails_the_next_write()
    {
        var store = await OpenSettledAsync();

        File.Delete(_dir.Database);
        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None));

        Assert.That(failure!.Message, Does.Contain(_dir.Database).And.Contain("deleted"));
        await store.DisposeAsync();
    }

    [Test]
    public async Task Replacing_the_wal_after_the_quick_check_was_trusted_still_fails_the_next_write()
    {
        var store = await OpenSettledAsync();
        var wal = _dir.Database + "-wal";

        File.Copy(wal, wal + ".copy");
        File.Move(wal + ".copy", wal, overwrite: true);
        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None));

        Assert.That(failure!.Message, Does.Contain(wal).And.Contain("replaced"));
        await store.DisposeAsync();
    }

    [Test]
    public async Task A_file_made_read_only_after_the_quick_check_was_trusted_fails_writes_on_the_quick_path()
    {
        await using var store = await OpenSettledAsync();
        var original = File.GetUnixFileMode(_dir.Database);
        var full = store.FullFileChecks;

        File.SetUnixFileMode(_dir.Database, UnixFileMode.UserRead | UnixFileMode.GroupRead);
        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("during", Records.Base), CancellationToken.None));
        File.SetUnixFileMode(_dir.Database, original);

        Assert.That(failure!.Message, Does.Contain("read-only").And.Contain(_dir.Database));
        Assert.That(store.FullFileChecks, Is.EqualTo(full), "a mode change leaves the directory's time alone: the quick check saw it");
        await store.RecordTransactionAsync(Records.Transaction("after", Records.Base), CancellationToken.None);
    }

    [Test]
    public async Task A_directory_made_read_only_after_the_quick_check_was_trusted_fails_writes()
    {
        await using var store = await OpenSettledAsync();

        File.SetUnixFileMode(_dir.Path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var failure = Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Records.Transaction("during", Records.Base), CancellationToken.None));

        Assert.That(failure!.Message, Does.Contain("read-only").And.Contain(_dir.Path));
    }
}
