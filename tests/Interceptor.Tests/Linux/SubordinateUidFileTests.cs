using Interceptor.Linux;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace Interceptor.Tests.Linux;

public class SubordinateUidFileTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("subuid-test-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static uint? UidOf(string name) => name switch { "alice" => 1001, "bob" => 1002, _ => null };

    private static SubordinateUidFile Open(string path) => new(path, NullLogger.Instance, UidOf, uid => uid == 1003 ? "carol" : null);

    [Test]
    public void Names_and_numbers_resolve_and_unknown_owners_and_bad_lines_are_skipped()
    {
        var path = Path.Combine(_dir, "subuid");
        File.WriteAllText(path, "alice:100000:65536\nghost:165536:65536\n1003:231072:65536\nbad line\n");
        var map = Open(path).Current;
        Assert.Multiple(() =>
        {
            Assert.That(map.FindOwner(100001)?.Name, Is.EqualTo("alice"));
            Assert.That(map.FindOwner(100001)?.Uid, Is.EqualTo(1001));
            Assert.That(map.FindOwner(165537), Is.Null, "an owner without an account owns nothing");
            Assert.That(map.FindOwner(231073)?.Name, Is.EqualTo("carol"), "a numeric owner is named through the user database");
            Assert.That(map.Count, Is.EqualTo(2));
        });
    }

    [Test]
    public void A_missing_file_means_no_subordinate_uids()
    {
        Assert.That(Open(Path.Combine(_dir, "none")).Current.Count, Is.Zero);
    }

    [Test]
    public async Task A_replaced_file_is_read_again_within_about_a_second_but_not_on_every_lookup()
    {
        var path = Path.Combine(_dir, "subuid");
        File.WriteAllText(path, "alice:100000:65536\n");
        var file = Open(path);
        for (var i = 0; i < 10_000; i++)
        {
            _ = file.Current.FindOwner(100000);
        }

        Assert.That(file.Loads, Is.EqualTo(1), "10,000 lookups, one parse");

        // Replaced by rename, as useradd does: a new inode.
        var temporary = path + ".new";
        File.WriteAllText(temporary, "alice:100000:65536\nbob:165536:65536\n");
        File.Move(temporary, path, overwrite: true);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (file.Current.FindOwner(165536) is null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Multiple(() =>
        {
            Assert.That(file.Current.FindOwner(165536)?.Name, Is.EqualTo("bob"));
            Assert.That(file.Loads, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task A_range_that_holds_accounts_of_their_own_is_warned_of_once_naming_them_and_its_line()
    {
        var path = Path.Combine(_dir, "subuid");
        File.WriteAllText(path, "bob:100000:65536\nalice:1000:9000\n");
        var log = new RecordingLogger();
        var accounts = new (uint, string)[] { (0, "root"), (1001, "alice"), (1002, "bob"), (2000, "www-data"), (3000, "u3000"), (4000, "u4000"), (5000, "u5000"), (6000, "u6000"), (7000, "u7000") };
        var file = new SubordinateUidFile(path, log, UidOf, _ => null, () => accounts);
        await WaitForAsync(() => file.AccountChecks >= 1);

        var warnings = log.Entries.Where(e => e.Text.Contains("holds accounts", StringComparison.Ordinal)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(warnings, Has.Count.EqualTo(1), "bob's range holds none");
            Assert.That(warnings[0].Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Warning));
            Assert.That(warnings[0].Text, Does.Contain("line 2: the subordinate uid range 1000-9999 of alice holds accounts of their own: "
                + "bob (1002), www-data (2000), u3000 (3000), u4000 (4000), u5000 (5000) and 2 more. Their connections are charged to alice"));
            Assert.That(file.Current.FindOwner(1002)?.Name, Is.EqualTo("alice"), "attribution itself is unchanged: the owner first");
        });

        // The same file read again (a new inode, the same lines): the same warning is not repeated.
        File.WriteAllText(path + ".new", File.ReadAllText(path));
        File.Move(path + ".new", path, overwrite: true);
        await WaitForAsync(() => file.Current is not null && file.Loads == 2 && file.AccountChecks >= 2);
        Assert.That(log.Entries.Count(e => e.Text.Contains("holds accounts", StringComparison.Ordinal)), Is.EqualTo(1));
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.That(condition(), Is.True, "not within 10 s");
    }
}
