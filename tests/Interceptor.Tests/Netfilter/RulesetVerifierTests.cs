using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The samples are real `nft -j list table inet smtp_interceptor` output from nft 1.0.6 (Debian 12),
/// captured in a throwaway network namespace after applying the rendered ruleset, or a deliberately
/// altered copy of it (see the file names). default.json has non-zero counters from a redirected connection.
/// </summary>
public class RulesetVerifierTests
{
    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

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
              {"chain": {"family": "inet", "table": "smtp_interceptor", "name": "output_nat", "type": "nat",
                         "hook": "output", "prio": "dstnat", "policy": "accept"}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_nat", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                {"match": {"op": "in", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [{"range": [25, 26]}, 587]}}},
                {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": "@exempt_uids"}},
                {"accept": null}]}},
              {"rule": {"family": "inet", "table": "smtp_interceptor", "chain": "output_nat", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [25, 587]}}},
                {"redirect": {"port": 10025}}]}},
              {"table": {"family": "ip", "name": "smtp_interceptor"}}
            ]}
            """;
        using var document = JsonDocument.Parse(json);

        Assert.That(RulesetVerifier.FindDifferences(document, new RulesetSpec("smtp_interceptor", 10025, [25, 587], [0, 105])), Is.Empty);
    }

    [Test]
    public void Output_that_is_not_an_nft_listing_means_no_table()
    {
        using var document = JsonDocument.Parse("[1, 2]");

        Assert.That(RulesetVerifier.FindDifferences(document, DefaultSpec), Is.EqualTo(new[] { "table inet smtp_interceptor does not exist" }));
    }

    private static IReadOnlyList<string> Differences(string sample, RulesetSpec spec)
    {
        using var document = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindDifferences(document, spec);
    }
}
