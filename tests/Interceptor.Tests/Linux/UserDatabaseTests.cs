using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public class UserDatabaseTests
{
    [Test]
    public void Uid_0_is_root()
    {
        Assert.That(UserDatabase.NameOf(0), Is.EqualTo("root"));
    }

    [Test]
    public void A_uid_is_described_with_its_name_when_it_has_one() =>
        Assert.That((UserDatabase.Describe(0), UserDatabase.Describe(4_000_000_000)), Is.EqualTo(("uid 0 (root)", "uid 4000000000")));

    [Test]
    public void Second_answer_comes_from_the_cache()
    {
        var first = UserDatabase.NameOf(0);
        var second = UserDatabase.NameOf(0);

        Assert.That(second, Is.SameAs(first));
    }

    [Test]
    public void Root_is_uid_0()
    {
        Assert.That(UserDatabase.UidOf("root"), Is.EqualTo(0u));
    }

    [Test]
    public void Unknown_user_has_no_uid()
    {
        Assert.That(UserDatabase.UidOf("no-such-user-xyz"), Is.Null);
    }

    [TestCase("root", 0u)]
    [TestCase("0", 0u)]
    [TestCase("4321", 4321u)]
    [TestCase("4294967294", 4294967294u)]
    [TestCase("4294967295", null)]
    [TestCase("+1", null)]
    [TestCase(" 1", null)]
    [TestCase("1 ", null)]
    [TestCase("-0", null)]
    [TestCase("4294967296", null)]
    [TestCase("no-such-user-xyz", null)]
    public void A_user_is_named_by_name_or_by_a_uid_in_digits_alone(string text, uint? uid) =>
        Assert.That(UserDatabase.UidOfNameOrNumber(text), Is.EqualTo(uid));

    [TestCase("mallory", "no such user \"mallory\" in the user database")]
    [TestCase(" 1001", "no such user \" 1001\" in the user database (a uid is written in digits alone, without a sign or spaces)")]
    [TestCase("+1001", "no such user \"+1001\" in the user database (a uid is written in digits alone, without a sign or spaces)")]
    [TestCase("-0", "no such user \"-0\" in the user database (a uid is written in digits alone, without a sign or spaces)")]
    [TestCase("4294967295", "no such user \"4294967295\" in the user database (a uid is at most 4294967294)")]
    [TestCase("99999999999999999999", "no such user \"99999999999999999999\" in the user database (a uid is at most 4294967294)")]
    public void An_unknown_user_is_named_and_a_number_written_otherwise_told_how(string text, string message) =>
        Assert.That(UserDatabase.NoSuchUser(text), Is.EqualTo(message));

    [Test]
    public void Unknown_uid_has_no_name()
    {
        // Near the top of the 32-bit range, far above any allocated or overflow uid.
        Assert.That(UserDatabase.NameOf(4_000_000_123), Is.Null);
    }

    [Test]
    public void Name_and_uid_round_trip_for_the_current_user()
    {
        var euid = UserDatabase.EffectiveUid;
        var name = UserDatabase.NameOf(euid);
        Assume.That(name, Is.Not.Null, "the test user has no passwd entry");

        Assert.That(UserDatabase.UidOf(name!), Is.EqualTo(euid));
    }

    [Test]
    public void Effective_uid_matches_the_environment()
    {
        // Environment.UserName comes from getpwuid(geteuid()) as well, by another route.
        Assert.That(UserDatabase.NameOf(UserDatabase.EffectiveUid), Is.EqualTo(Environment.UserName));
    }

    [Test]
    public void Every_account_of_etc_passwd_is_listed_with_its_uid()
    {
        // The real passwd database: what /etc/passwd says, line by line, against what getpwent_r gives.
        var fromFile = File.ReadAllLines("/etc/passwd")
            .Select(line => line.Split(':'))
            .Where(fields => fields.Length >= 3 && uint.TryParse(fields[2], System.Globalization.CultureInfo.InvariantCulture, out _)) // not NIS's "+::::::"
            .Select(fields => (Uid: uint.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture), Name: fields[0]))
            .ToList();
        var listed = UserDatabase.Accounts();

        Assert.Multiple(() =>
        {
            Assert.That(listed, Does.Contain(((uint)0, "root")));
            Assert.That(listed, Is.SupersetOf(fromFile), "every line of /etc/passwd");
            Assert.That(UserDatabase.Accounts(limit: 2), Has.Count.EqualTo(2), "at most the limit");
            Assert.That(UserDatabase.Accounts(), Is.EqualTo(listed), "a second listing starts from the beginning again");
        });
    }
}
