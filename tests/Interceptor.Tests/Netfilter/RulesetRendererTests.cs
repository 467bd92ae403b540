using System.Net;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

public class RulesetRendererTests
{
    // The defaults: Listen.Port 24, port 25, root exempt (nftables/smtp_interceptor.nft shows this one).
    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 24, [25], [0]);

    private static readonly RulesetSpec SeveralPortsAndUids = new("smtp_interceptor", 10025, [2525, 25, 587], [1000, 0, 105, 1000]);

    private static readonly RulesetSpec EmptyExemptSet = new("smtp_interceptor", 10025, [25], []);

    /// <summary>Every feature at once: several intercepted ports, suspended users, blocked ports, IPv4 and IPv6 routes.</summary>
    internal static readonly RulesetSpec Everything = new("smtp_interceptor", 10025, [25, 587, 2525], [0, 105, 998])
    {
        SuspendedUids = [1002, 1001],
        SuspendedUidRanges = [new(300000, 365535), new(165536, 231071), new(231072, 231080)],
        BlockedPorts = [465],
        StrayLogGroup = 25,
        AllowedRoutes =
        [
            new(1003, IPAddress.Parse("2001:db8::25"), 2525),
            new(1003, IPAddress.Parse("192.0.2.10"), 2525),
            new(1004, IPAddress.Parse("198.51.100.7"), 587),
        ],
    };

    /// <summary>Everything plus the connection rate limit: the default meter, one user with a rate of their own, one unlimited.</summary>
    internal static readonly RulesetSpec RateLimited = Everything with
    {
        DefaultConnectionRate = new(20, 50),
        UserConnectionRates = [new(1006, null), new(1005, new(5, 10))],
    };

    /// <summary>
    /// RateLimited with sub-UIDs (/etc/subuid): 1005 (own rate 5/s burst 10) owns two ranges, 1006 (unlimited) one, 1007
    /// (the default rate) one.
    /// </summary>
    internal static readonly RulesetSpec SubordinateRated = RateLimited with
    {
        SubordinateUidRanges = [new(1007, new(600000, 665535)), new(1005, new(500000, 500099)), new(1006, new(400000, 465535)), new(1005, new(700000, 765535))],
    };

    /// <summary>An /etc/subuid line of count 1 (<c>carol:300000:1</c>): nft lists its match as a plain uid, not a range.</summary>
    internal static readonly RulesetSpec SubordinateSingleUid = SubordinateRated with
    {
        SubordinateUidRanges = [.. SubordinateRated.SubordinateUidRanges, new(1008, new(300000, 300000))],
    };

    /// <summary>What the packaged configuration installs: the default table with Limits.Default's 20/s burst 50.</summary>
    internal static readonly RulesetSpec PackagedDefault = DefaultSpec with { DefaultConnectionRate = new(20, 50) };

    [TestCase("default.nft")]
    [TestCase("rate-limits.nft")]
    [TestCase("multiple-ports-and-uids.nft")]
    [TestCase("empty-exempt-set.nft")]
    [TestCase("everything.nft")]
    [TestCase("lockdown.nft")]
    public void Render_matches_the_golden_file(string golden)
    {
        var spec = golden switch
        {
            "lockdown.nft" => Everything with { Lockdown = true },
            "default.nft" => DefaultSpec,
            "multiple-ports-and-uids.nft" => SeveralPortsAndUids,
            "everything.nft" => Everything,
            "rate-limits.nft" => RateLimited,
            _ => EmptyExemptSet,
        };

        AssertGolden(Path.Combine(NetfilterTestData.SourceDirectory, "Golden", golden), RulesetRenderer.Render(spec), Path.Combine("Golden", golden));
    }

    [Test]
    public void The_example_in_the_nftables_folder_is_the_default_ruleset()
    {
        var path = Path.Combine(NetfilterTestData.RepositoryRoot, "nftables", "smtp_interceptor.nft");
        var rendered = RulesetRenderer.Render(PackagedDefault);
        if (NetfilterTestData.UpdateGolden)
        {
            File.WriteAllText(path, rendered);
        }

        Assert.That(File.ReadAllText(path), Is.EqualTo(rendered), "nftables/smtp_interceptor.nft is stale; rerun the tests with UPDATE_GOLDEN=1");
    }

    [Test]
    public void Render_replaces_only_our_table_in_one_script()
    {
        var script = RulesetRenderer.Render(new RulesetSpec("other_name", 10025, [25], [0]));
        var commands = script.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith(' ')).ToList();

        Assert.That(commands, Is.EqualTo(new[]
        {
            "table inet other_name {}",
            "delete table inet other_name",
            "table inet other_name {",
            "}",
            "table inet other_name_guard {}",
            "delete table inet other_name_guard",
            "table inet other_name_guard {",
            "}",
        }));
        Assert.That(script, Does.Not.Contain("flush ruleset"));
    }

    [Test]
    public void Every_rule_has_a_counter_and_a_comment()
    {
        // Main table: 3 filter + 5 NAT rules (plus one for blocked ports); guard: 6 rules. The passes count nothing.
        Assert.That(Rules(SeveralPortsAndUids), Has.Count.EqualTo(8 + 6));
        Assert.That(Rules(Everything), Has.Count.EqualTo(9 + 6));
        Assert.That(Rules(Everything), Has.All.Contains(" counter ").And.All.Contains(" comment \""));
    }

    [Test]
    public void The_filter_chain_comes_first_with_exempt_users_before_the_refusals()
    {
        var filter = Rules(Everything).Take(4).ToList();

        Assert.That(filter[0], Does.StartWith("tcp dport { 25, 465, 587, 2525, 10025 } meta skuid @exempt_uids ct state new counter accept"));
        Assert.That(filter[1], Does.StartWith("tcp dport { 25, 587, 2525 } meta skuid @suspended_uids ct state new counter reject with tcp reset"));
        Assert.That(filter[2], Does.StartWith("tcp dport { 25, 587, 2525 } meta skuid @suspended_subuids ct state new counter reject with tcp reset"));
        Assert.That(filter[3], Does.StartWith("tcp dport 465 ct state new counter reject with tcp reset"));
        Assert.That(RulesetRenderer.Render(Everything), Does.Contain("type filter hook output priority -150; policy accept;"));
    }

    [Test]
    public void The_guard_runs_after_the_redirect_and_refuses_intercepted_and_blocked_ports_after_its_exceptions()
    {
        var script = RulesetRenderer.Render(Everything);
        var guard = script[script.IndexOf("table inet smtp_interceptor_guard {\n", StringComparison.Ordinal)..];
        var rules = Rules(Everything).TakeLast(6).ToList();

        Assert.That(guard, Does.Contain("type filter hook output priority 0; policy accept;"));
        Assert.That(guard, Does.Contain("elements = { 0, 105, 998 }"), "the guard's exempt set is the main table's");
        Assert.That(guard, Does.Contain("elements = { 1003 . 2001:db8::25 . 2525 }"), "the guard's routes are the main table's");
        Assert.That(rules[0], Does.StartWith("tcp dport { 25, 465, 587, 2525 } meta skuid @exempt_uids counter accept"));
        Assert.That(rules[1], Does.StartWith("tcp dport { 25, 465, 587, 2525 } tcp flags syn / syn,ack ct state established,related counter log prefix \"smtp-interceptor stray-syn\" group 25 reject with tcp reset"));
        Assert.That(rules[2], Does.StartWith("meta skuid . ip daddr . tcp dport @allowed_routes_v4 ct state new counter accept"));
        Assert.That(rules[3], Does.StartWith("meta skuid . ip6 daddr . tcp dport @allowed_routes_v6 ct state new counter accept"));
        Assert.That(rules[4], Does.StartWith("tcp dport { 25, 465, 587, 2525 } ct state new counter reject with tcp reset"));
        Assert.That(rules[5], Does.StartWith("tcp dport { 25, 465, 587, 2525 } meta skuid != @exempt_uids ct state invalid,untracked counter log prefix \"smtp-interceptor stray-packet\" group 25 drop"));
    }

    [Test]
    public void Without_a_stray_log_group_the_guards_stray_rules_only_count()
    {
        var rules = Rules(Everything with { StrayLogGroup = 0 }).TakeLast(6).ToList();

        Assert.That(rules[1], Does.Contain("ct state established,related counter reject with tcp reset"));
        Assert.That(rules[5], Does.Contain("ct state invalid,untracked counter drop"));
        Assert.That(RulesetRenderer.Render(Everything with { StrayLogGroup = 0 }), Does.Not.Contain(" log "));
    }

    [Test]
    public void Allowed_routes_come_after_the_exempt_rule_and_before_the_redirects()
    {
        var nat = Rules(Everything).Skip(4).ToList();

        Assert.That(nat[0], Does.Contain("@exempt_uids counter accept"));
        Assert.That(nat[1], Does.StartWith("meta skuid . ip daddr . tcp dport @allowed_routes_v4 counter accept"));
        Assert.That(nat[2], Does.StartWith("meta skuid . ip6 daddr . tcp dport @allowed_routes_v6 counter accept"));
        Assert.That(nat[3], Does.Contain("redirect to :10025"));
        Assert.That(nat[4], Does.Contain("redirect to :10025"));
    }

    [Test]
    public void Routes_go_to_the_set_of_their_address_family_in_a_fixed_order()
    {
        var script = RulesetRenderer.Render(Everything);

        Assert.That(script, Does.Contain("elements = { 1003 . 192.0.2.10 . 2525, 1004 . 198.51.100.7 . 587 }"));
        Assert.That(script, Does.Contain("elements = { 1003 . 2001:db8::25 . 2525 }"));
        Assert.That(script, Does.Contain("elements = { 1001, 1002 }"));
    }

    [Test]
    public void Without_blocked_ports_there_is_no_blocked_port_rule()
    {
        var script = RulesetRenderer.Render(SeveralPortsAndUids);

        Assert.That(script, Does.Not.Contain("BlockedPorts"));
        Assert.That(script, Does.Contain("tcp dport { 25, 587, 2525, 10025 } meta skuid @exempt_uids ct state new counter accept"));
    }

    [Test]
    public void Suspend_and_unsuspend_change_only_the_set()
    {
        Assert.That(RulesetRenderer.RenderSuspend("smtp_interceptor", 1001), Is.EqualTo("add element inet smtp_interceptor suspended_uids { 1001 }\n"));
        Assert.That(RulesetRenderer.RenderUnsuspend("smtp_interceptor", 1001), Is.EqualTo(
            "add element inet smtp_interceptor suspended_uids { 1001 }\ndelete element inet smtp_interceptor suspended_uids { 1001 }\n"));
        Assert.That(() => RulesetRenderer.RenderSuspend("x }\nflush ruleset", 1), Throws.ArgumentException);
    }

    [Test]
    public void Suspend_and_unsuspend_with_sub_uid_ranges_refill_the_interval_set_in_the_same_transaction()
    {
        Assert.That(RulesetRenderer.RenderSuspend("smtp_interceptor", 1001, [new(300000, 365535), new(100000, 165535), new(165536, 165540)]), Is.EqualTo(
            "add element inet smtp_interceptor suspended_uids { 1001 }\n"
            + "flush set inet smtp_interceptor suspended_subuids\n"
            + "add element inet smtp_interceptor suspended_subuids { 100000-165540, 300000-365535 }\n"));
        Assert.That(RulesetRenderer.RenderUnsuspend("smtp_interceptor", 1001, []), Is.EqualTo(
            "add element inet smtp_interceptor suspended_uids { 1001 }\ndelete element inet smtp_interceptor suspended_uids { 1001 }\n"
            + "flush set inet smtp_interceptor suspended_subuids\n"));
    }

    [Test]
    public void The_sub_uid_set_is_an_interval_set_refused_right_after_the_suspended_users()
    {
        var script = RulesetRenderer.Render(Everything);
        var lines = script.Split('\n');
        var suspended = Array.FindIndex(lines, l => l.Contains("@suspended_uids ct state new counter reject", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(script, Does.Contain("    set suspended_subuids {\n        type uid\n        flags interval\n"));
            Assert.That(script, Does.Contain("elements = { 165536-231080, 300000-365535 }"), "sorted, adjacent ranges merged");
            Assert.That(lines[suspended + 1], Does.StartWith("        tcp dport { 25, 587, 2525 } meta skuid @suspended_subuids ct state new counter reject with tcp reset"));
        });
    }

    [Test]
    public void Several_ports_render_as_an_anonymous_set_and_one_as_a_number()
    {
        Assert.That(RulesetRenderer.PortExpression([25]), Is.EqualTo("25"));
        Assert.That(RulesetRenderer.PortExpression([25, 587, 2525]), Is.EqualTo("{ 25, 587, 2525 }"));
    }

    [Test]
    public void Empty_sets_are_declared_without_an_elements_line()
    {
        var script = RulesetRenderer.Render(EmptyExemptSet);

        Assert.That(script, Does.Contain("set exempt_uids {").And.Contain("set suspended_uids {")
            .And.Contain("set allowed_routes_v4 {").And.Contain("set allowed_routes_v6 {"));
        Assert.That(script, Does.Not.Contain("elements"));
    }

    [Test]
    public void Output_does_not_depend_on_the_order_or_repetition_of_the_input()
    {
        var shuffled = new RulesetSpec("smtp_interceptor", 10025, [587, 25, 2525, 25], [105, 1000, 0]);
        var everythingShuffled = Everything with
        {
            Ports = [2525, 587, 25],
            SuspendedUids = [1001, 1002, 1001],
            BlockedPorts = [465, 465],
            AllowedRoutes = [.. Everything.AllowedRoutes.Reverse(), Everything.AllowedRoutes[0]],
        };

        Assert.That(RulesetRenderer.Render(shuffled), Is.EqualTo(RulesetRenderer.Render(SeveralPortsAndUids)));
        Assert.That(RulesetRenderer.Render(everythingShuffled), Is.EqualTo(RulesetRenderer.Render(Everything)));
    }

    [Test]
    public void The_listener_port_cannot_be_intercepted()
    {
        var spec = new RulesetSpec("smtp_interceptor", 10025, [25, 10025], [0]);

        Assert.That(() => RulesetRenderer.Render(spec), Throws.ArgumentException.With.Message.Contains("Listen.Port 10025"));
    }

    [Test]
    public void Output_uses_lf_line_ends_and_no_tabs()
    {
        var script = RulesetRenderer.Render(DefaultSpec);

        Assert.That(script, Does.Not.Contain("\r").And.Not.Contain("\t").And.EndsWith("}\n"));
    }

    // The rule lines of both chains, in order, without indentation.
    private static List<string> Rules(RulesetSpec spec) =>
        [.. RulesetRenderer.Render(spec).Split('\n')
            .Select(l => l.Trim())
            .Where(l => l.Contains(" counter ", StringComparison.Ordinal))];

    private static void AssertGolden(string sourcePath, string actual, string relativePath)
    {
        if (NetfilterTestData.UpdateGolden)
        {
            File.WriteAllText(sourcePath, actual);
        }

        Assert.That(actual, Is.EqualTo(NetfilterTestData.Read(relativePath)), $"{relativePath} differs; if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff");
    }

    [Test]
    public void The_lockdown_form_has_no_redirect_and_keeps_the_guard()
    {
        var normal = RulesetRenderer.Render(Everything);
        var lockdown = RulesetRenderer.Render(Everything with { Lockdown = true });

        Assert.Multiple(() =>
        {
            Assert.That(normal, Does.Contain("redirect to :10025"));
            Assert.That(lockdown, Does.Not.Contain("redirect to"));
            Assert.That(lockdown, Does.Contain("LOCKDOWN"));
            Assert.That(lockdown, Does.Contain("table inet smtp_interceptor_guard {").And.Contain("reject with tcp reset"));
            Assert.That(lockdown, Does.Contain("@exempt_uids counter accept").And.Contain("@allowed_routes_v4 counter accept"), "exempt users and routes still pass");
        });
    }
}
