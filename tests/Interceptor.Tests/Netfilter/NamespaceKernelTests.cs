using System.Net;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// What the kernel does with real connections under our table: suspended users and blocked ports refused,
/// allowed routes going out directly, everything else redirected. Each test runs in its own throwaway
/// network namespace with plain Python listeners and clients (as uid 65534, "nobody", and others via setpriv);
/// the host's ruleset is never touched. Root only; inconclusive elsewhere.
/// </summary>
[NonParallelizable]
public class NamespaceKernelTests
{
    private const string Table = "smtp_interceptor";
    private const uint Nobody = 65534;
    private const uint OtherUser = 1000;

    private static readonly RulesetSpec Base = new(Table, 10025, [25], [0]);

    private TestNamespace? ns;

    private TestNamespace Ns => ns!;

    [SetUp]
    public void CreateNamespace()
    {
        ns = TestNamespace.CreateOrSkip(needsConnections: true);
    }

    [TearDown]
    public void DeleteNamespace()
    {
        ns?.Dispose();
        ns = null;
    }

    [Test]
    public async Task A_suspended_user_is_refused_by_the_kernel_until_unsuspended()
    {
        var manager = new RulesetManager(Ns.Nft);
        var spec = Base with { SuspendedUids = [Nobody] };
        await manager.InstallAsync(spec, CancellationToken.None);
        var daemon = Ns.Listen("127.0.0.1:10025");
        var handle = await Ns.TableHandleAsync();

        var refused = Ns.Connect(Nobody, "127.0.0.2", 25);

        Assert.That(refused.Outcome, Is.EqualTo("refused"));
        Assert.That(refused.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "a TCP reset, not a timeout");
        Assert.That(await SuspendedPacketsAsync(), Is.EqualTo(1));
        Assert.That(await RedirectV4PacketsAsync(), Is.Zero);
        Assert.That(daemon.Accepted, Is.Empty, "the daemon must see nothing");
        Assert.That(await manager.ListSuspendedAsync(Table, CancellationToken.None), Is.EqualTo(new[] { Nobody }));

        await manager.UnsuspendAsync(Table, Nobody, CancellationToken.None);

        Assert.That(await manager.ListSuspendedAsync(Table, CancellationToken.None), Is.Empty);
        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"));
        Assert.That(daemon.WaitForAccepted(1), Is.EqualTo(new[] { "127.0.0.1 10025" }), "redirected to the daemon again");
        Assert.That(await SuspendedPacketsAsync(), Is.EqualTo(1), "unsuspending keeps the counters");
        Assert.That(await RedirectV4PacketsAsync(), Is.EqualTo(1));
        Assert.That(await manager.FindDifferencesAsync(Base, CancellationToken.None), Is.Empty);

        // Both directions are idempotent, and none of it replaces the table.
        await manager.UnsuspendAsync(Table, Nobody, CancellationToken.None);
        await manager.SuspendAsync(Table, Nobody, CancellationToken.None);
        await manager.SuspendAsync(Table, Nobody, CancellationToken.None);

        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 25).Outcome, Is.EqualTo("refused"));
        Assert.That(await SuspendedPacketsAsync(), Is.EqualTo(2));
        Assert.That(await RedirectV4PacketsAsync(), Is.EqualTo(1), "suspending keeps the counters");
        Assert.That(await Ns.TableHandleAsync(), Is.EqualTo(handle), "the table was never replaced");
        Assert.That(daemon.Accepted, Has.Count.EqualTo(1));
        Assert.That(await manager.FindDifferencesAsync(spec, CancellationToken.None), Is.Empty);
    }

    [Test]
    public async Task The_sub_uids_of_a_suspended_user_are_refused_by_the_kernel_until_she_is_unsuspended()
    {
        const uint subUid = 1_900_000_005;
        global::Interceptor.Core.Attribution.UidRange[] range = [new(1_900_000_000, 1_900_065_535)];
        var manager = new RulesetManager(Ns.Nft);
        await manager.InstallAsync(Base, CancellationToken.None);
        var daemon = Ns.Listen("127.0.0.1:10025");

        await manager.SuspendAsync(Table, OtherUser, range, CancellationToken.None);
        var refused = Ns.Connect(subUid, "127.0.0.2", 25);
        var refused6 = Ns.Connect(subUid, "::1", 25);
        var outside = Ns.Connect(1_900_065_536, "127.0.0.2", 25);

        var packets = await SubordinatePacketsAsync();
        var differences = await manager.FindDifferencesAsync(Base with { SuspendedUids = [OtherUser], SuspendedUidRanges = range }, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(refused.Outcome, Is.EqualTo("refused"));
            Assert.That(refused6.Outcome, Is.EqualTo("refused"), "over IPv6 too");
            Assert.That(outside.Outcome, Is.EqualTo("connected"), "the uid after her range is not hers");
            Assert.That(packets, Is.EqualTo(2));
            Assert.That(differences, Is.Empty);
        });

        // Suspending her again (or another user with the same range) is not an error: the set is refilled, not added to.
        await manager.SuspendAsync(Table, OtherUser, range, CancellationToken.None);
        await manager.UnsuspendAsync(Table, OtherUser, [], CancellationToken.None);

        Assert.That(Ns.Connect(subUid, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"));
        Assert.That(daemon.WaitForAccepted(2), Has.Count.EqualTo(2));
        Assert.That(await manager.FindDifferencesAsync(Base, CancellationToken.None), Is.Empty);
    }

    [Test]
    public async Task Suspension_applies_only_to_the_suspended_user_and_not_to_exempt_ones()
    {
        var manager = new RulesetManager(Ns.Nft);
        await manager.InstallAsync(Base, CancellationToken.None);
        var daemon = Ns.Listen("127.0.0.1:10025", "127.0.0.2:25");

        await manager.SuspendAsync(Table, Nobody, CancellationToken.None);
        await manager.SuspendAsync(Table, 0, CancellationToken.None);

        Assert.That(await manager.ListSuspendedAsync(Table, CancellationToken.None), Is.EqualTo(new uint[] { 0, Nobody }));
        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 25).Outcome, Is.EqualTo("refused"));
        Assert.That(Ns.Connect(Nobody, "::1", 25).Outcome, Is.EqualTo("refused"), "over IPv6 too");
        Assert.That(await SuspendedPacketsAsync(), Is.EqualTo(2));
        Assert.That(Ns.Connect(OtherUser, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"));
        Assert.That(Ns.Connect(null, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"), "the exempt rule comes first");
        Assert.That(daemon.WaitForAccepted(2), Is.EquivalentTo(new[] { "127.0.0.1 10025", "127.0.0.2 25" }));
    }

    [Test]
    public void Suspending_without_the_table_is_an_error_that_says_so()
    {
        var manager = new RulesetManager(Ns.Nft);

        Assert.That(
            () => manager.SuspendAsync(Table, Nobody, CancellationToken.None),
            Throws.InstanceOf<NftCommandException>().With.Message.Contains("the table or its set does not exist"));
        Assert.That(
            () => manager.UnsuspendAsync(Table, Nobody, CancellationToken.None),
            Throws.InstanceOf<NftCommandException>());
        Assert.That(
            () => manager.ListSuspendedAsync(Table, CancellationToken.None),
            Throws.InstanceOf<NetfilterException>().With.Message.Contains("does not exist"));
    }

    [Test]
    public async Task An_allowed_route_goes_out_directly_for_its_user_only()
    {
        var manager = new RulesetManager(Ns.Nft);
        var spec = new RulesetSpec(Table, 10025, [25, 2525], [0])
        {
            AllowedRoutes = [new(Nobody, IPAddress.Parse("127.0.0.2"), 2525), new(Nobody, IPAddress.IPv6Loopback, 2525)],
        };
        await manager.InstallAsync(spec, CancellationToken.None);
        var listener = Ns.Listen("127.0.0.1:10025", "127.0.0.2:2525", "::1:10025", "::1:2525");

        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 2525).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(1)[^1], Is.EqualTo("127.0.0.2 2525"), "the route goes directly");

        Assert.That(Ns.Connect(OtherUser, "127.0.0.2", 2525).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(2)[^1], Is.EqualTo("127.0.0.1 10025"), "another user is redirected");

        Assert.That(Ns.Connect(Nobody, "::1", 2525).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(3)[^1], Is.EqualTo("::1 2525"), "the IPv6 route goes directly");

        Assert.That(Ns.Connect(OtherUser, "::1", 2525).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(4)[^1], Is.EqualTo("::1 10025"), "another user is redirected over IPv6");

        Assert.That(await Ns.PacketsAsync(RulesetSpec.NatChainName, r => r.RouteSet == RulesetSpec.AllowedRoutesV4SetName), Is.EqualTo(1));
        Assert.That(await Ns.PacketsAsync(RulesetSpec.NatChainName, r => r.RouteSet == RulesetSpec.AllowedRoutesV6SetName), Is.EqualTo(1));
        Assert.That(await Ns.PacketsAsync(RulesetSpec.NatChainName, r => r.RedirectPort is not null && r.Nfproto == "ipv4"), Is.EqualTo(1));
        Assert.That(await Ns.PacketsAsync(RulesetSpec.NatChainName, r => r.RedirectPort is not null && r.Nfproto == "ipv6"), Is.EqualTo(1));
    }

    [Test]
    public async Task A_route_is_only_that_address_and_port()
    {
        var manager = new RulesetManager(Ns.Nft);
        var spec = new RulesetSpec(Table, 10025, [25, 2525], [0]) { AllowedRoutes = [new(Nobody, IPAddress.Parse("127.0.0.2"), 2525)] };
        await manager.InstallAsync(spec, CancellationToken.None);
        var listener = Ns.Listen("127.0.0.1:10025", "127.0.0.2:25", "127.0.0.3:2525");

        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"));
        Assert.That(Ns.Connect(Nobody, "127.0.0.3", 2525).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(2), Is.EqualTo(new[] { "127.0.0.1 10025", "127.0.0.1 10025" }));
    }

    [Test]
    public async Task A_blocked_port_is_refused_for_users_but_not_for_root()
    {
        var manager = new RulesetManager(Ns.Nft);
        var spec = Base with { BlockedPorts = [465] };
        await manager.InstallAsync(spec, CancellationToken.None);
        var server = Ns.Listen("127.0.0.2:465");

        var refused = Ns.Connect(Nobody, "127.0.0.2", 465);

        Assert.That(refused.Outcome, Is.EqualTo("refused"));
        Assert.That(refused.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)));
        Assert.That(server.Accepted, Is.Empty);
        Assert.That(await Ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Rejects && r.SkuidSet is null), Is.EqualTo(1));

        Assert.That(Ns.Connect(null, "127.0.0.2", 465).Outcome, Is.EqualTo("connected"));
        Assert.That(server.WaitForAccepted(1), Is.EqualTo(new[] { "127.0.0.2 465" }));
        Assert.That(await Ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Accepts && r.SkuidSet == RulesetSpec.ExemptSetName), Is.EqualTo(1));
        Assert.That(await Ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Rejects && r.SkuidSet is null), Is.EqualTo(1));
    }

    [TestCase("delete table inet smtp_interceptor")]
    [TestCase("flush chain inet smtp_interceptor output_nat")]
    [TestCase("flush table inet smtp_interceptor")]
    public async Task Without_the_main_table_the_guard_refuses_customers_but_not_exempt_users_nor_routes(string tampering)
    {
        var manager = new RulesetManager(Ns.Nft);
        var spec = Base with { AllowedRoutes = [new(OtherUser, IPAddress.Parse("127.0.0.2"), 25)] };
        await manager.InstallAsync(spec, CancellationToken.None);
        var listener = Ns.Listen("127.0.0.1:10025", "127.0.0.2:25");

        // While the main table is intact the guard lets everything through: redirected, exempt, routed.
        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(1)[^1], Is.EqualTo("127.0.0.1 10025"));
        Assert.That(await GuardRefusalsAsync(), Is.Zero);

        await Ns.Nft.ApplyAsync(tampering + "\n", CancellationToken.None);

        var escaped = Ns.Connect(Nobody, "127.0.0.2", 25);
        Assert.That(escaped.Outcome, Is.EqualTo("refused"), "a customer must not reach port 25 directly");
        Assert.That(Ns.Connect(Nobody, "::1", 25).Outcome, Is.EqualTo("refused"), "over IPv6 neither");
        Assert.That(await GuardRefusalsAsync(), Is.EqualTo(2));
        Assert.That(Ns.Connect(null, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"), "root is exempt");
        Assert.That(Ns.Connect(OtherUser, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"), "an allowed route stays allowed");
        Assert.That(listener.WaitForAccepted(3).Skip(1), Is.EqualTo(new[] { "127.0.0.2 25", "127.0.0.2 25" }));
        Assert.That(await manager.FindDifferencesAsync(spec, CancellationToken.None), Is.Not.Empty);

        await manager.InstallAsync(spec, CancellationToken.None);
        Assert.That(Ns.Connect(Nobody, "127.0.0.2", 25).Outcome, Is.EqualTo("connected"));
        Assert.That(listener.WaitForAccepted(4)[^1], Is.EqualTo("127.0.0.1 10025"), "redirected again once restored");
    }

    private Task<long> GuardRefusalsAsync() =>
        Ns.PacketsAsync(RulesetSpec.GuardChainName, r => r.Rejects && !r.SynOnly, Base.GuardTable);

    private Task<long> SuspendedPacketsAsync() =>
        Ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Rejects && r.SkuidSet == RulesetSpec.SuspendedSetName);

    private Task<long> SubordinatePacketsAsync() =>
        Ns.PacketsAsync(RulesetSpec.FilterChainName, r => r.Rejects && r.SkuidSet == RulesetSpec.SuspendedSubordinateSetName);

    private Task<long> RedirectV4PacketsAsync() =>
        Ns.PacketsAsync(RulesetSpec.NatChainName, r => r.RedirectPort is not null && r.Nfproto == "ipv4");
}
