using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public sealed class DurableFilesTests
{
    [Test]
    public void A_directory_can_be_synced_and_a_missing_one_is_an_io_error_naming_it()
    {
        var directory = Directory.CreateTempSubdirectory("durable-").FullName;
        try
        {
            Assert.DoesNotThrow(() => DurableFiles.SyncDirectory(directory));
            var missing = Path.Combine(directory, "missing");
            var e = Assert.Throws<IOException>(() => DurableFiles.SyncDirectory(missing))!;
            Assert.That(e.Message, Does.Contain(missing));
        }
        finally
        {
            Directory.Delete(directory);
        }
    }

    [Test]
    public void The_owner_of_what_we_create_is_our_effective_uid_and_roots_files_are_roots()
    {
        var file = Path.GetTempFileName();
        try
        {
            Assert.That(DurableFiles.OwnerOf(file), Is.EqualTo(UserDatabase.EffectiveUid));
            Assert.That(DurableFiles.OwnerOf("/etc/passwd"), Is.Zero);
            Assert.Throws<IOException>(() => DurableFiles.OwnerOf(file + ".missing"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
