using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Configuration;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Commands;

/// <summary>
/// Whom check-config and rules check or render for: --daemon-user; else a caller holding CAP_NET_ADMIN (a unit's User=);
/// else the package's account where it exists; else the caller.
/// </summary>
[TestFixture]
public class DaemonAccountTests
{
    private static readonly Dictionary<string, uint> Accounts = new() { ["root"] = 0, ["smtp-interceptor"] = 995, ["alice"] = 1001 };

    private static DaemonAccount Resolve(string? requested, uint caller, bool packaged = true, bool service = false) => DaemonAccount.Resolve(
        requested,
        caller,
        service,
        name => (packaged || name != DaemonAccount.PackagedName) && Accounts.TryGetValue(name, out var uid) ? uid : Interceptor.Linux.UserDatabase.ParseUid(name),
        uid => $"uid {uid}");

    [Test]
    public void Without_daemon_user_anyone_gets_the_packages_account_where_it_exists_and_is_told()
    {
        Assert.That(Resolve(null, caller: 0), Is.EqualTo(new DaemonAccount(995, "uid 995", InsteadOfCaller: true)));
        Assert.That(Resolve(null, caller: 1001), Is.EqualTo(new DaemonAccount(995, "uid 995", InsteadOfCaller: true)), "an admin of Control.AdminGroup");
        Assert.That(Resolve(null, caller: 995), Is.EqualTo(new DaemonAccount(995, "uid 995", InsteadOfCaller: false)), "the package's account itself");
    }

    [Test]
    public void A_caller_with_cap_net_admin_is_a_units_user_and_renders_for_itself() =>
        Assert.That(Resolve(null, caller: 1001, service: true), Is.EqualTo(new DaemonAccount(1001, "uid 1001", InsteadOfCaller: false)),
            "the boot table's unit with a drop-in's User=");

    [Test]
    public void Without_the_package_the_caller_is_the_daemons_user() =>
        Assert.That(Resolve(null, caller: 0, packaged: false), Is.EqualTo(new DaemonAccount(0, "uid 0", InsteadOfCaller: false)));

    [Test]
    public void Daemon_user_names_the_account_by_name_or_number_whoever_asks()
    {
        Assert.That(Resolve("root", caller: 0), Is.EqualTo(new DaemonAccount(0, "uid 0", InsteadOfCaller: false)));
        Assert.That(Resolve("alice", caller: 995).Uid, Is.EqualTo(1001u));
        Assert.That(Resolve("4321", caller: 0).Uid, Is.EqualTo(4321u));
        Assert.That(() => Resolve("mallory", caller: 0), Throws.TypeOf<ConfigurationException>().With.Message.Contains("--daemon-user: no such user \"mallory\""));
    }
}
