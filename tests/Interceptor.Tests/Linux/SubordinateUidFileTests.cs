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
    public async Task A_range_that_holds_the_uids_of_other_accounts_is_warned_of_once_naming_them_and_its_line()
    {
        var path = Path.Combine(_dir, "subuid");
        File.WriteAllText(path, "bob:100000:65536\nalice:1000:9000\n");
        var log = new RecordingLogger();
        var accounts = new (uint, string)[] { (0, "root"), (1001, "alice"), (1002, "bob"), (2000, "www-data"), (3000, "u3000"), (4000, "u4000"), (5000, "u5000"), (6000, "u6000"), (7000, "u7000") };
        var listings = 0;
        var check = new SubordinateUidAccountCheck(path, log, () =>
        {
            Interlocked.Increment(ref listings);
            return accounts;
        });
        var file = new SubordinateUidFile(path, log, UidOf, _ => null, check);
        await WaitForAsync(() => check.Checks >= 1);

        var warnings = log.Entries.Where(e => e.Text.Contains("holds the uids of other accounts", StringComparison.Ordinal)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(warnings, Has.Count.EqualTo(1), "bob's range holds none");
            Assert.That(warnings[0].Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Warning));
            Assert.That(warnings[0].Text, Is.EqualTo($"{path} line 2: the subordinate uid range 1000-9999 of alice holds the uids of other accounts: "
                + "bob (1002), www-data (2000), u3000 (3000), u4000 (4000), u5000 (5000) and 2 more. Their connections are charged to the "
                + "range's owner, who can also become them through newuidmap; move the range to uids no account uses"));
            Assert.That(file.Current.FindOwner(1002)?.Name, Is.EqualTo("alice"), "attribution itself is unchanged: the owner first");
        });

        // Lookups within the hour list nothing again, nor does the same lines read again (a new inode: the same ranges).
        for (var i = 0; i < 1_000; i++)
        {
            _ = file.Current;
        }

        Assert.That(Volatile.Read(ref listings), Is.EqualTo(1), "one listing for 1,000 lookups of an unchanged file");
        File.WriteAllText(path + ".new", File.ReadAllText(path));
        File.Move(path + ".new", path, overwrite: true);
        await WaitForAsync(() => file.Current is not null && file.Loads == 2);
        await Task.Delay(200);
        Assert.Multiple(() =>
        {
            Assert.That(Volatile.Read(ref listings), Is.EqualTo(1), "the same ranges: not listed again within the hour");
            Assert.That(log.Entries.Count(e => e.Text.Contains("holds the uids of other accounts", StringComparison.Ordinal)), Is.EqualTo(1));
        });

        // Fixed by the admin: said so once.
        File.WriteAllText(path + ".new", "bob:100000:65536\nalice:200000:9000\n");
        File.Move(path + ".new", path, overwrite: true);
        await WaitForAsync(() => file.Current is not null && file.Loads == 3 && check.Checks >= 2);
        Assert.That(log.Lines.Count(l => l.Contains("no range holds another account's uid (9 account(s) listed by the passwd database, 2 range(s)", StringComparison.Ordinal)),
            Is.EqualTo(1));
    }

    [Test]
    public async Task A_listing_that_fails_is_reported_and_the_next_change_is_checked_again()
    {
        var path = Path.Combine(_dir, "subuid");
        File.WriteAllText(path, "alice:1000:9000\n");
        var log = new RecordingLogger();
        var fail = true;
        var check = new SubordinateUidAccountCheck(path, log, () => Volatile.Read(ref fail)
            ? throw new InvalidOperationException("a broken NSS module")
            : new (uint, string)[] { (1002, "bob") });
        var file = new SubordinateUidFile(path, log, UidOf, _ => null, check);
        await WaitForAsync(() => log.Lines.Any(l => l.Contains("cannot check", StringComparison.Ordinal)));
        Assert.That(log.Lines.Single(l => l.Contains("cannot check", StringComparison.Ordinal)),
            Is.EqualTo($"cannot check {path}'s ranges against the accounts: InvalidOperationException: a broken NSS module"));

        Volatile.Write(ref fail, false);
        File.WriteAllText(path + ".new", "alice:1000:9001\n");
        File.Move(path + ".new", path, overwrite: true);
        await WaitForAsync(() => file.Current is not null && log.Lines.Any(l => l.Contains("bob (1002)", StringComparison.Ordinal)));
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
