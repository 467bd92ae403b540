using System.Net;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

public class RulesetSpecTests
{
    [Test]
    public void A_with_expression_is_normalised_too()
    {
        var spec = new RulesetSpec("smtp_interceptor", 10025, [25], [0]) with { ExemptUids = [7, 3, 7] };

        Assert.That(spec.ExemptUids, Is.EqualTo(new uint[] { 3, 7 }));
    }

    [TestCase("")]
    [TestCase("1abc")]
    [TestCase("smtp interceptor")]
    [TestCase("x}\ndelete table inet filter")]
    [TestCase("a.b")]
    public void Table_names_that_are_not_plain_identifiers_are_refused(string table)
    {
        Assert.That(() => new RulesetSpec(table, 10025, [25], [0]), Throws.ArgumentException);
    }

    [TestCase(0)]
    [TestCase(65536)]
    public void Ports_outside_the_tcp_range_are_refused(int port)
    {
        Assert.That(() => new RulesetSpec("t", port, [25], [0]), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => new RulesetSpec("t", 10025, [port], [0]), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void An_empty_port_list_is_refused()
    {
        Assert.That(() => new RulesetSpec("t", 10025, [], [0]), Throws.ArgumentException);
    }

    [Test]
    public void Equal_contents_make_equal_specs_and_ToString_shows_them()
    {
        var a = new RulesetSpec("t", 10025, [25, 587], [0, 105]);
        var b = new RulesetSpec("t", 10025, [587, 25], [105, 0]);

        Assert.That(a, Is.EqualTo(b));
        Assert.That(a.GetHashCode(), Is.EqualTo(b.GetHashCode()));
        Assert.That(a.ToString(), Is.EqualTo(
            "RulesetSpec { Table = t, ListenPort = 10025, Ports = [25, 587], ExemptUids = [0, 105], SuspendedUids = [], SuspendedUidRanges = [], BlockedPorts = [], AllowedRoutes = [] }"));
    }

    [Test]
    public void Suspensions_blocked_ports_and_routes_are_empty_unless_set()
    {
        var spec = new RulesetSpec("smtp_interceptor", 24, [25], [0u]);

        Assert.That(spec.SuspendedUids, Is.Empty);
        Assert.That(spec.BlockedPorts, Is.Empty);
        Assert.That(spec.AllowedRoutes, Is.Empty);
    }

    [Test]
    public void Suspensions_blocked_ports_and_routes_are_sorted_and_deduplicated()
    {
        var spec = new RulesetSpec("t", 10025, [25], [0])
        {
            SuspendedUids = [1002, 1001, 1002],
            BlockedPorts = [587, 465, 587],
            AllowedRoutes =
            [
                new(1001, IPAddress.Parse("2001:db8::1"), 2525),
                new(1001, IPAddress.Parse("192.0.2.20"), 2525),
                new(1000, IPAddress.Parse("192.0.2.100"), 25),
                new(1001, IPAddress.Parse("192.0.2.3"), 2525),
                new(1001, IPAddress.Parse("192.0.2.3"), 2525),
            ],
        };

        Assert.That(spec.SuspendedUids, Is.EqualTo(new uint[] { 1001, 1002 }));
        Assert.That(spec.BlockedPorts, Is.EqualTo(new[] { 465, 587 }));
        Assert.That(spec.AllowedRoutes.Select(r => r.ToString()), Is.EqualTo(new[]
        {
            "1000 . 192.0.2.100 . 25",
            "1001 . 192.0.2.3 . 2525",
            "1001 . 192.0.2.20 . 2525",
            "1001 . 2001:db8::1 . 2525",
        }));
    }

    [Test]
    public void The_new_lists_take_part_in_equality_and_ToString()
    {
        var a = new RulesetSpec("t", 10025, [25], [0]) { SuspendedUids = [1001], BlockedPorts = [465], AllowedRoutes = [new(1001, IPAddress.Parse("192.0.2.1"), 2525)] };
        var b = new RulesetSpec("t", 10025, [25], [0]) { AllowedRoutes = [new(1001, IPAddress.Parse("192.0.2.1"), 2525)], BlockedPorts = [465], SuspendedUids = [1001] };

        Assert.That(a, Is.EqualTo(b));
        Assert.That(a.GetHashCode(), Is.EqualTo(b.GetHashCode()));
        Assert.That(a, Is.Not.EqualTo(a with { SuspendedUids = [] }));
        Assert.That(a, Is.Not.EqualTo(a with { BlockedPorts = [] }));
        Assert.That(a, Is.Not.EqualTo(a with { AllowedRoutes = [new(1001, IPAddress.Parse("192.0.2.1"), 2526)] }));
        Assert.That(a.ToString(), Does.EndWith("SuspendedUids = [1001], SuspendedUidRanges = [], BlockedPorts = [465], AllowedRoutes = [1001 . 192.0.2.1 . 2525] }"));
    }

    [Test]
    public void Sub_uid_ranges_are_kept_merged_and_take_part_in_equality_and_ToString()
    {
        var a = new RulesetSpec("t", 10025, [25], [0]) { SuspendedUidRanges = [new(300000, 365535), new(100000, 165535), new(165536, 165540)] };
        var b = new RulesetSpec("t", 10025, [25], [0]) { SuspendedUidRanges = [new(100000, 165540), new(300000, 365535)] };

        Assert.That(a, Is.EqualTo(b));
        Assert.That(a.GetHashCode(), Is.EqualTo(b.GetHashCode()));
        Assert.That(a, Is.Not.EqualTo(a with { SuspendedUidRanges = [] }));
        Assert.That(a.ToString(), Does.Contain("SuspendedUidRanges = [100000-165540, 300000-365535]"));
    }

    [Test]
    public void A_blocked_port_may_be_neither_intercepted_nor_the_listener_port()
    {
        var spec = new RulesetSpec("t", 10025, [25, 465], [0]);

        Assert.That(() => (spec with { BlockedPorts = [465] }).EnsureConsistent(), Throws.ArgumentException.With.Message.Contains("465"));
        Assert.That(() => (spec with { BlockedPorts = [10025] }).EnsureConsistent(), Throws.ArgumentException.With.Message.Contains("Listen.Port 10025"));
        Assert.That(() => spec with { BlockedPorts = [0] }, Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => RulesetRenderer.Render(spec with { BlockedPorts = [465] }), Throws.ArgumentException);
    }

    [Test]
    public void A_route_to_a_blocked_port_is_refused_because_it_could_never_be_used()
    {
        var spec = new RulesetSpec("t", 10025, [25], [0]) { BlockedPorts = [465], AllowedRoutes = [new(1001, IPAddress.Parse("192.0.2.1"), 465)] };

        Assert.That(spec.EnsureConsistent, Throws.ArgumentException.With.Message.Contains("1001 . 192.0.2.1 . 465"));
    }

    [Test]
    public void Route_addresses_are_normalised_or_refused()
    {
        var mapped = new AllowedRoute(1001, IPAddress.Parse("::ffff:192.0.2.1"), 25);

        Assert.That(mapped.Address, Is.EqualTo(IPAddress.Parse("192.0.2.1")));
        Assert.That(mapped.IsIPv6, Is.False);
        Assert.That(mapped, Is.EqualTo(new AllowedRoute(1001, IPAddress.Parse("192.0.2.1"), 25)));
        Assert.That(() => new AllowedRoute(1001, IPAddress.Parse("fe80::1%2"), 25), Throws.ArgumentException);
        Assert.That(() => new AllowedRoute(1001, IPAddress.Loopback, 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => new AllowedRoute(1001, null!, 25), Throws.ArgumentNullException);
    }
}
