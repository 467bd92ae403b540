using System.Net;
using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The samples are real `nft -j list table inet smtp_interceptor` output from nft 1.0.6 (Debian 12),
/// captured in a throwaway network namespace after applying the rendered ruleset, or a deliberately
/// altered copy of it (see the file names and <see cref="SampleCapture"/>, which recreates them).
/// default.json has non-zero counters from a redirected connection, everything.json from a suspended user,
/// a blocked port, an exempt user, an allowed route and a redirect. previous-version.json is the table
/// of the release before the filter chain.
/// </summary>
public class RulesetVerifierTests
{
    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

    private static readonly RulesetSpec Everything = RulesetRendererTests.Everything;

    [Test]
    public void The_default_ruleset_matches()
    {
        Assert.That(Differences("default.json", DefaultSpec), Is.Empty);
    }

    [Test]
    public void Several_ports_and_uids_match()
    {
        Assert.That(Differences("multiple-ports-and-uids.json", new RulesetSpec("smtp_interceptor", 10025, [25, 587, 2525], [0, 105, 1000])), Is.Empty);
    }

    [Test]
    public void An_empty_exempt_set_matches_a_spec_without_uids()
    {
        Assert.That(Differences("empty-exempt-set.json", DefaultSpec with { ExemptUids = [] }), Is.Empty);
    }

    [Test]
    public void A_missing_set_element_is_reported()
    {
        var differences = Differences("missing-set-element.json", DefaultSpec with { ExemptUids = [0, 1000] });

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.Contain("exempt_uids lacks UID(s) 1000"));
    }

    [Test]
    public void An_unexpected_set_element_is_reported()
    {
        var differences = Differences("multiple-ports-and-uids.json", new RulesetSpec("smtp_interceptor", 10025, [25, 587, 2525], [0]));

        Assert.That(differences, Is.EqualTo(new[] { "set exempt_uids holds unexpected UID(s) 105, 1000: these users bypass interception" }));
    }

    [Test]
    public void A_redirect_to_the_wrong_listener_port_is_reported()
    {
        var differences = Differences("wrong-redirect-port.json", DefaultSpec);

        Assert.That(differences, Has.Some.Contains("no IPv4 rule redirects to port 10025"));
        Assert.That(differences, Has.Some.Contains("no IPv6 rule redirects to port 10025"));
        Assert.That(differences, Has.Some.Contains("redirects to port 10026"));
    }

    [Test]
    public void A_redirect_for_the_wrong_intercepted_port_is_reported()
    {
        var differences = Differences("wrong-intercepted-port.json", DefaultSpec);

        Assert.That(differences, Is.EqualTo(new[] { "no IPv4 redirect to port 10025 covers destination port(s) 25" }));
    }

    [Test]
    public void A_missing_ipv6_rule_is_reported()
    {
        var differences = Differences("missing-ipv6-rule.json", DefaultSpec);

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.StartWith("no IPv6 rule redirects to port 10025"));
    }

    [Test]
    public void Intercepted_ports_missing_from_a_rule_are_reported()
    {
        var differences = Differences("default.json", DefaultSpec with { Ports = [25, 587] });

        Assert.That(differences, Is.EqualTo(new[]
        {
            "the rule for set exempt_uids in chain output_filter does not cover port(s) 587",
            "the rule for set suspended_uids does not cover port(s) 587",
            "the rule for set suspended_subuids does not cover port(s) 587",
            "the rule for set exempt_uids does not cover port(s) 587",
            "no IPv4 redirect to port 10025 covers destination port(s) 587",
            "no IPv6 redirect to port 10025 covers destination port(s) 587",
        }));
    }

    [Test]
    public void An_exempt_rule_after_the_redirects_is_reported()
    {
        Assert.That(Differences("exempt-after-redirect.json", DefaultSpec), Is.EqualTo(new[]
        {
            "the rule for set exempt_uids comes after a redirect rule, so it never applies",
        }));
    }

    [Test]
    public void A_rule_added_by_hand_is_reported()
    {
        var differences = Differences("extra-accept-rule.json", DefaultSpec);

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.Contain("unexpected rule").And.Contain("accepts").And.Contain("added by hand"));
    }

    [Test]
    public void Another_table_name_is_reported_as_missing()
    {
        Assert.That(Differences("default.json", DefaultSpec with { Table = "other" }), Is.EqualTo(new[] { "table inet other does not exist" }));
    }

    [Test]
    public void Chain_type_hook_priority_and_policy_are_checked()
    {
        var json = NetfilterTestData.Read(Path.Combine("Samples", "default.json"))
            .Replace("\"prio\": -100", "\"prio\": 0", StringComparison.Ordinal)
            .Replace("\"policy\": \"accept\"", "\"policy\": \"drop\"", StringComparison.Ordinal)
            .Replace("\"hook\": \"output\"", "\"hook\": \"prerouting\"", StringComparison.Ordinal);
        using var document = JsonDocument.Parse(json);

        Assert.That(RulesetVerifier.FindDifferences(document, DefaultSpec), Is.EqualTo(new[]
        {
            "chain output_filter: hook is prerouting, expected output",
            "chain output_filter has policy drop, expected accept",
            "chain output_nat: hook is prerouting, expected output",
            "chain output_nat has priority 0, expected -100 (dstnat)",
            "chain output_nat has policy drop, expected accept",
        }));
    }

    [Test]
    public void Other_spellings_nft_may_use_are_tolerated()
    {
        // A newer nft may print the priority by name, wrap set elements, use ranges or omit handles.
        const string json = """
            {"nftables": [
              {"table": {"family": "inet", "name": "smtp_interceptor"}},
              {"set": {"family": "inet", "name": "exempt_uids", "table": "smtp_interceptor", "type": "uid",
                       "elem": [{"elem": {"val": 0, "counter": {"packets": 1, "bytes": 2}}}, 105]}},
              {"set": {"family": "inet", "name": "suspended_uids", "table": "smtp_interceptor", "type": "uid", "elem": 1001}},
              {"set": {"family": "inet", "name": "suspended_subuids", "table": "smtp_interceptor", "type": "uid", "flags": "interval",
                       "elem": [{"range": [300000, 300004]}, {"range": [300005, 365535]}, 400000]}},
              {"set": {"family": "inet", "name": "allowed_routes_v4", "table": "smtp_interceptor", "type": ["uid", "ipv4_addr", "inet_service"],
                       "elem": {"elem": {"val": {"concat": [1003, "192.0.2.10", 2525]}, "counter": {"packets": 0, "bytes": 0}}}}},
              {"set": {"family": "inet", "name": "allowed_routes_v6", "table": "smtp_interceptor", "type": ["uid", "ipv6_addr", "inet_service"],
                       "elem": [{"concat": [1003, "2001:0db8:0:0::25", 2525]}]}},
              {"chain": {"family": "inet", "table": "smtp_interceptor", "name": "output_filter", "type": "filter",
                         "hook": "output", "prio": "mangle", "policy": "accept"}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_filter", "expr": [
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "established"}},
                {"accept": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_filter", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [{"range": [25, 26]}, 587, 10025]}}},
                {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": "@exempt_uids"}},
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["new"]}},
                {"accept": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_filter", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [25, 587]}}},
                {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": "@suspended_uids"}},
                {"reject": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_filter", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [25, 587]}}},
                {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": "@suspended_subuids"}},
                {"reject": null}]}},
              {"chain": {"family": "inet", "table": "smtp_interceptor", "name": "output_nat", "type": "nat",
                         "hook": "output", "prio": "dstnat", "policy": "accept"}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_nat", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                {"match": {"op": "in", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [{"range": [25, 26]}, 587]}}},
                {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": "@exempt_uids"}},
                {"accept": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_nat", "expr": [
                {"match": {"op": "==", "left": {"concat": [{"meta": {"key": "skuid"}}, {"payload": {"protocol": "ip", "field": "daddr"}},
                  {"payload": {"protocol": "tcp", "field": "dport"}}]}, "right": "@allowed_routes_v4"}},
                {"accept": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_nat", "expr": [
                {"match": {"op": "==", "left": {"concat": [{"meta": {"key": "skuid"}}, {"payload": {"protocol": "ip6", "field": "daddr"}},
                  {"payload": {"protocol": "tcp", "field": "dport"}}]}, "right": "@allowed_routes_v6"}},
                {"accept": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_nat", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [25, 587]}}},
                {"redirect": {"port": 10025}}]}},
              {"table": {"family": "ip", "name": "smtp_interceptor"}}
            ]}
            """;
        using var document = JsonDocument.Parse(json);

        var spec = new RulesetSpec("smtp_interceptor", 10025, [25, 587], [0, 105])
        {
            SuspendedUids = [1001],
            SuspendedUidRanges = [new(300000, 365535), new(400000, 400000)],
            AllowedRoutes = [new(1003, IPAddress.Parse("192.0.2.10"), 2525), new(1003, IPAddress.Parse("2001:db8::25"), 2525)],
        };

        Assert.That(RulesetVerifier.FindDifferences(document, spec), Is.Empty);
    }

    [Test]
    public void Suspended_users_blocked_ports_and_routes_match()
    {
        Assert.That(Differences("everything.json", Everything), Is.Empty);
    }

    [Test]
    public void A_table_from_before_the_filter_chain_is_reported()
    {
        Assert.That(Differences("previous-version.json", DefaultSpec), Is.EqualTo(new[]
        {
            "chain output_filter is missing",
            "set suspended_uids is missing",
            "set suspended_subuids is missing",
            "set allowed_routes_v4 is missing",
            "set allowed_routes_v6 is missing",
            "chain output_filter does not start with ct state established,related accept: every packet of the host's open connections goes through all its rules",
            "no rule in chain output_filter accepts the users in set exempt_uids: blocked ports and suspensions would apply to them too, the daemon included",
            "no rule in chain output_filter refuses the users in set suspended_uids: suspended users would still reach smtp-interceptor",
            "no rule in chain output_filter refuses the uids in set suspended_subuids: suspended users could still send through their subordinate uids",
            "no rule accepts the routes in set allowed_routes_v4: those users' IPv4 connections would be intercepted",
            "no rule accepts the routes in set allowed_routes_v6: those users' IPv6 connections would be intercepted",
        }));
    }

    [Test]
    public void The_suspended_set_must_hold_exactly_the_suspended_uids()
    {
        Assert.That(Differences("everything.json", Everything with { SuspendedUids = [1001, 1005] }), Is.EqualTo(new[]
        {
            "set suspended_uids lacks UID(s) 1005: these suspended users are not refused by the kernel",
            "set suspended_uids holds unexpected UID(s) 1002: the kernel refuses these users although they are not suspended",
        }));
    }

    [Test]
    public void The_route_sets_must_hold_exactly_the_routes()
    {
        var routes = Everything.AllowedRoutes.Where(r => r.Uid != 1004).Append(new(1005, IPAddress.Parse("2001:db8::26"), 25)).ToList();

        Assert.That(Differences("everything.json", Everything with { AllowedRoutes = routes }), Is.EqualTo(new[]
        {
            "set allowed_routes_v4 holds unexpected route(s) 1004 . 198.51.100.7 . 587: these connections bypass interception",
            "set allowed_routes_v6 lacks route(s) 1005 . 2001:db8::26 . 25: these connections would be intercepted",
        }));
    }

    [Test]
    public void A_route_set_of_the_wrong_type_is_reported()
    {
        var json = NetfilterTestData.Read(Path.Combine("Samples", "everything.json"))
            .Replace("\"ipv6_addr\"", "\"ipv4_addr\"", StringComparison.Ordinal);
        using var document = JsonDocument.Parse(json);

        Assert.That(RulesetVerifier.FindDifferences(document, Everything), Is.EqualTo(new[]
        {
            "set allowed_routes_v6: type is uid . ipv4_addr . inet_service, expected uid . ipv6_addr . inet_service",
        }));
    }

    [Test]
    public void Blocked_ports_without_a_rule_are_reported()
    {
        Assert.That(Differences("missing-blocked-rule.json", Everything), Is.EqualTo(new[]
        {
            "no rule in chain output_filter refuses blocked port(s) 465: non-exempt users can connect to them",
        }));
        Assert.That(Differences("default.json", DefaultSpec with { BlockedPorts = [465] }), Is.EqualTo(new[]
        {
            "the rule for set exempt_uids in chain output_filter does not cover port(s) 465",
            "no rule in chain output_filter refuses blocked port(s) 465: non-exempt users can connect to them",
        }));
    }

    [Test]
    public void A_blocked_port_rule_the_spec_does_not_ask_for_is_unexpected()
    {
        var differences = Differences("everything.json", Everything with { BlockedPorts = [] });

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.StartWith("unexpected rule in chain output_filter: it rejects (handle ").And.Contain("Blocked ports"));
    }

    [Test]
    public void A_reject_rule_for_a_port_that_is_not_blocked_is_unexpected()
    {
        var json = NetfilterTestData.Read(Path.Combine("Samples", "everything.json"))
            .Replace("\"right\": 465", "\"right\": {\"set\": [22, 465]}", StringComparison.Ordinal);
        using var document = JsonDocument.Parse(json);

        var differences = RulesetVerifier.FindDifferences(document, Everything);

        Assert.That(differences, Has.Count.EqualTo(2));
        Assert.That(differences[0], Is.EqualTo("no rule in chain output_filter refuses blocked port(s) 465: non-exempt users can connect to them"));
        Assert.That(differences[1], Does.StartWith("unexpected rule in chain output_filter: it rejects"));
    }

    [Test]
    public void An_exempt_rule_after_a_reject_rule_is_reported()
    {
        Assert.That(Differences("exempt-after-reject.json", DefaultSpec), Is.EqualTo(new[]
        {
            "the rule for set exempt_uids in chain output_filter comes after a reject rule, so exempt users can be refused",
        }));
    }

    [Test]
    public void Route_rules_after_the_redirects_are_reported()
    {
        Assert.That(Differences("routes-after-redirect.json", Everything), Is.EqualTo(new[]
        {
            "the rule for set allowed_routes_v4 comes after a redirect rule, so it never applies",
            "the rule for set allowed_routes_v6 comes after a redirect rule, so it never applies",
        }));
    }

    [Test]
    public void A_suspended_rule_missing_a_port_is_reported()
    {
        Assert.That(Differences("suspended-rule-missing-a-port.json", Everything), Is.EqualTo(new[]
        {
            "the rule for set suspended_uids does not cover port(s) 2525",
        }));
    }

    [Test]
    public void A_rule_added_by_hand_to_the_filter_chain_is_reported()
    {
        var differences = Differences("extra-filter-rule.json", Everything);

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.StartWith("unexpected rule in chain output_filter: it does something else").And.Contain("added by hand"));
    }

    [Test]
    public void The_suspended_uids_are_read_from_a_table_or_a_set_listing()
    {
        using var table = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", "everything.json")));
        using var set = JsonDocument.Parse("""
            {"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
              {"set": {"family": "inet", "name": "suspended_uids", "table": "smtp_interceptor", "type": "uid", "handle": 4, "elem": [1001, 1003]}}]}
            """);
        using var empty = JsonDocument.Parse("""
            {"nftables": [{"set": {"family": "inet", "name": "suspended_uids", "table": "smtp_interceptor", "type": "uid", "handle": 4}}]}
            """);

        Assert.That(RulesetVerifier.SuspendedUids(table, "smtp_interceptor"), Is.EqualTo(new uint[] { 1001, 1002 }));
        Assert.That(RulesetVerifier.SuspendedUids(set, "smtp_interceptor"), Is.EqualTo(new uint[] { 1001, 1003 }));
        Assert.That(RulesetVerifier.SuspendedUids(empty, "smtp_interceptor"), Is.Empty);
        Assert.That(RulesetVerifier.SuspendedUids(set, "other"), Is.Null);
    }

    [Test]
    public void Output_that_is_not_an_nft_listing_means_no_table()
    {
        using var document = JsonDocument.Parse("[1, 2]");

        Assert.That(RulesetVerifier.FindDifferences(document, DefaultSpec), Is.EqualTo(new[] { "table inet smtp_interceptor does not exist" }));
    }

    [Test]
    public void Sub_uid_ranges_other_than_the_suspended_users_ones_are_a_difference()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Differences("everything.json", Everything with { SuspendedUidRanges = [] }), Is.EqualTo(new[]
            {
                "set suspended_subuids holds [165536-231080, 300000-365535], expected []: the kernel refuses other subordinate uids than those of the suspended users",
            }));
            Assert.That(Differences("everything.json", Everything with { SuspendedUidRanges = [.. Everything.SuspendedUidRanges, new(400000, 400009)] }).Single(),
                Does.StartWith("set suspended_subuids holds [165536-231080, 300000-365535], expected [165536-231080, 300000-365535, 400000-400009]"));
            Assert.That(Differences("default.json", DefaultSpec with { SuspendedUidRanges = [new(100000, 165535)] }).Single(),
                Does.StartWith("set suspended_subuids holds [], expected [100000-165535]"));
        });
    }

    [Test]
    public void Only_who_the_suspension_sets_hold_counts_as_membership_not_the_structure_around_them()
    {
        var membership = Differences("everything.json", Everything with { SuspendedUids = [1001, 1005], SuspendedUidRanges = [] });
        var structure = Differences("missing-subuid-rule.json", Everything)
            .Concat(Differences("everything.json", Everything with { ExemptUids = [0, 1000, 4242] }));
        Assert.Multiple(() =>
        {
            Assert.That(membership, Has.Count.EqualTo(3));
            Assert.That(membership, Has.All.Matches<string>(RulesetVerifier.IsSuspensionMembership), string.Join("\n", membership));
            Assert.That(structure, Is.Not.Empty);
            Assert.That(structure, Has.None.Matches<string>(RulesetVerifier.IsSuspensionMembership), string.Join("\n", structure));
            Assert.That(RulesetVerifier.IsSuspensionMembership("set suspended_uids is missing"), Is.False);
        });
    }

    [Test]
    public void Without_the_sub_uid_rule_suspended_users_could_send_through_their_sub_uids()
    {
        Assert.That(Differences("missing-subuid-rule.json", Everything), Is.EqualTo(new[]
        {
            "no rule in chain output_filter refuses the uids in set suspended_subuids: suspended users could still send through their subordinate uids",
        }));
    }

    [Test]
    public void A_dormant_table_is_reported_though_every_rule_is_in_place()
    {
        // nft keeps a dormant table's chains and rules, and runs none of them: no redirect, no refusal.
        // nft 1.0.6 prints the flag in JSON as the family ("inet"); the table as installed has no "flags" at all.
        Assert.That(Differences("dormant.json", DefaultSpec), Is.EqualTo(new[] { "table inet smtp_interceptor has flags (see nft list table inet smtp_interceptor), which smtp-interceptor never sets: a dormant table runs none of its chains" }));
        Assert.That(Differences("default.json", DefaultSpec), Is.Empty);
        using var guard = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", "guard-dormant.json")));
        Assert.That(RulesetVerifier.FindGuardDifferences(guard, DefaultSpec),
            Is.EqualTo(new[] { "table inet smtp_interceptor_guard: table inet smtp_interceptor_guard has flags (see nft list table inet smtp_interceptor_guard), which smtp-interceptor never sets: a dormant table runs none of its chains" }));
    }

    private static IReadOnlyList<string> Differences(string sample, RulesetSpec spec)
    {
        using var document = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindDifferences(document, spec);
    }
}
