using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Configuration;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Commands;

/// <summary>Whom check-config and rules check or render for: --user, else the caller, but root gets the package's account.</summary>
[TestFixture]
public class DaemonAccountTests
{
    private static readonly Dictionary<string, uint> Accounts = new() { ["root"] = 0, ["smtp-interceptor"] = 995, ["alice"] = 1001 };

    private static DaemonAccount Resolve(string? requested, uint caller, bool packaged = true) => DaemonAccount.Resolve(
        requested,
        caller,
        name => (packaged || name != DaemonAccount.PackagedName) && Accounts.TryGetValue(name, out var uid) ? uid : null,
        uid => $"uid {uid}");

    [Test]
    public void Root_without_user_gets_the_packages_account_where_it_exists_and_is_told() =>
        Assert.That(Resolve(null, caller: 0), Is.EqualTo(new DaemonAccount(995, "uid 995", InsteadOfCaller: true)));

    [Test]
    public void Root_without_the_package_and_anyone_else_get_themselves()
    {
        Assert.That(Resolve(null, caller: 0, packaged: false), Is.EqualTo(new DaemonAccount(0, "uid 0", InsteadOfCaller: false)));
        Assert.That(Resolve(null, caller: 995), Is.EqualTo(new DaemonAccount(995, "uid 995", InsteadOfCaller: false)), "the boot unit, as its User=");
    }

    [Test]
    public void User_names_the_account_by_name_or_number_whoever_asks()
    {
        Assert.That(Resolve("root", caller: 0), Is.EqualTo(new DaemonAccount(0, "uid 0", InsteadOfCaller: false)));
        Assert.That(Resolve("alice", caller: 995).Uid, Is.EqualTo(1001u));
        Assert.That(Resolve("4321", caller: 0).Uid, Is.EqualTo(4321u));
        Assert.That(() => Resolve("mallory", caller: 0), Throws.TypeOf<ConfigurationException>().With.Message.Contains("--user: no such user \"mallory\""));
    }
}
