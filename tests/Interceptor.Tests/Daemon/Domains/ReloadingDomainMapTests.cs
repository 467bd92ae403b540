using Interceptor.Core.Options;
using Interceptor.Daemon.Domains;
using Interceptor.Smtp.Identity;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Domains;

[TestFixture]
public class ReloadingDomainMapTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("smtpi-domains-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void The_map_is_read_again_when_its_file_changes_and_bad_lines_are_logged_with_their_number()
    {
        var path = Path.Combine(_directory, "domains");
        File.WriteAllText(path, "alice: example.test\n");
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var logger = new RecordingLogger();
        var map = new ReloadingDomainMap(new DomainsOptions { Source = DomainSource.File, File = path }, logger, clock);
        Assert.That(map.Current.OwnerOf("example.test", false), Is.EqualTo("alice"));

        File.WriteAllText(path + ".new", "alice: example.test\nbroken line\nbob: bob.test other.test\n");
        File.Move(path + ".new", path, overwrite: true);
        Assert.That(map.Current.OwnerOf("bob.test", false), Is.Null, "not before the check interval");
        clock.Advance(ReloadingDomainMap.CheckInterval);

        Assert.That(map.Current.OwnerOf("bob.test", false), Is.EqualTo("bob"));
        Assert.That(logger.Lines, Has.Some.Contains("line 2 skipped"));
    }

    [Test]
    public void A_missing_file_keeps_the_last_map_and_is_logged_once()
    {
        var path = Path.Combine(_directory, "domains");
        File.WriteAllText(path, "alice: example.test\n");
        var clock = new ManualClock(DateTimeOffset.UnixEpoch);
        var logger = new RecordingLogger();
        var map = new ReloadingDomainMap(new DomainsOptions { Source = DomainSource.File, File = path }, logger, clock);
        File.Delete(path);
        for (var i = 0; i < 3; i++)
        {
            clock.Advance(ReloadingDomainMap.CheckInterval);
            Assert.That(map.Current.OwnerOf("example.test", false), Is.EqualTo("alice"));
        }

        Assert.That(logger.Errors, Has.Count.EqualTo(1));
    }

    [Test]
    public void The_panels_own_files_are_the_default_paths()
    {
        Assert.That(ReloadingDomainMap.PathFor(new DomainsOptions { Source = DomainSource.Cpanel }), Is.EqualTo("/etc/userdomains"));
        Assert.That(ReloadingDomainMap.PathFor(new DomainsOptions { Source = DomainSource.DirectAdmin }), Is.EqualTo("/etc/virtual/domainowners"));
    }

    [Test]
    public void A_key_directory_others_can_read_is_named_with_its_mode()
    {
        File.SetUnixFileMode(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        Assert.That(DkimKeyStore.DirectoryProblem(_directory), Does.Contain(_directory).And.Contain("mode 0705"));

        File.SetUnixFileMode(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Assert.That(DkimKeyStore.DirectoryProblem(_directory), Is.Null);
        Assert.That(DkimKeyStore.DirectoryProblem(_directory + "/absent"), Does.Contain("does not exist"));
    }
}
