using System.Text.Json;
using System.Text.Json.Nodes;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// nft 1.0.6 lists no <c>meta nfproto</c> that an <c>ip</c> or <c>ip6</c> address match implies in an inet table. A
/// version that prints it must leave our rules ours: otherwise the watchdog would find the table changed at every check
/// and replace it. The real listings (<see cref="SampleCapture"/>) are given the match the address implies, then the
/// other family's, which narrows a rule to nothing and must be reported.
/// </summary>
public class ExplicitNfprotoTests
{
    [TestCase("metrics.json")]
    [TestCase("metrics-v6-rate-limited.json")]
    [TestCase("everything.json")]
    [TestCase("guard-everything.json")]
    public void A_listing_that_prints_the_implied_family_is_still_our_table(string sample)
    {
        var (listing, changed) = WithNfproto(sample, implied: true);

        Assert.That(changed, Is.Positive, "no rule with an address match in the sample");
        Assert.That(Differences(listing, sample), Is.Empty);
    }

    [TestCase("metrics.json")]
    [TestCase("metrics-v6-rate-limited.json")]
    [TestCase("everything.json")]
    [TestCase("guard-everything.json")]
    public void The_other_family_on_an_address_match_is_a_difference(string sample)
    {
        var (listing, changed) = WithNfproto(sample, implied: false);

        Assert.That(changed, Is.Positive);
        Assert.That(Differences(listing, sample), Is.Not.Empty);
    }

    [TestCase("everything.json", "exempt_uids")]
    [TestCase("everything.json", "suspended_uids")]
    [TestCase("guard-everything.json", "exempt_uids")]
    public void A_family_match_on_a_rule_without_an_address_narrows_it_and_is_a_difference(string sample, string set)
    {
        // `meta nfproto ipv6` on the exempt users' accept: their IPv4 connections would be redirected (the daemon's own to
        // itself), or a suspended user's IPv4 ones no longer refused.
        var root = JsonNode.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)))!;
        var rule = root["nftables"]!.AsArray().Select(o => o?["rule"]).OfType<JsonObject>()
            .First(r => r["expr"]!.ToJsonString().Contains($"\"@{set}\"", StringComparison.Ordinal) && !r["expr"]!.ToJsonString().Contains("\"!=\"", StringComparison.Ordinal));
        rule["expr"]!.AsArray().Insert(0, NfprotoMatch("ipv6"));

        Assert.That(Differences(root.ToJsonString(), sample), Is.Not.Empty, rule.ToJsonString());
    }

    [TestCase("metrics.json")]
    [TestCase("metrics-v6-rate-limited.json")]
    [TestCase("everything.json")]
    [TestCase("guard-everything.json")]
    public void A_family_match_that_narrows_any_one_rule_is_a_difference(string sample)
    {
        // Every rule of the listing in turn, alone: the family its address or its own family match does not name, else
        // IPv6 (which leaves out every IPv4 packet the rule was for).
        var count = Rules(JsonNode.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)))!).Count();
        var missed = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var root = JsonNode.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)))!;
            var rule = Rules(root).ElementAt(i);
            var text = rule["expr"]!.ToJsonString();
            var narrowing = text.Contains("\"protocol\":\"ip6\"", StringComparison.Ordinal) || text.Contains("\"ipv6\"", StringComparison.Ordinal) ? "ipv4" : "ipv6";
            rule["expr"]!.AsArray().Insert(0, NfprotoMatch(narrowing));
            if (Differences(root.ToJsonString(), sample).Count == 0)
            {
                missed.Add(rule.ToJsonString());
            }
        }

        Assert.That(count, Is.GreaterThan(3));
        Assert.That(missed, Is.Empty, "rules a family match narrowed unnoticed");
    }

    [Test]
    public void Two_family_matches_on_one_rule_are_a_difference_even_when_the_last_is_implied()
    {
        // `ip daddr 127.0.0.1 … meta nfproto ipv6 meta nfproto ipv4 reject`: the refusal of other users matches nothing.
        var root = JsonNode.Parse(NetfilterTestData.Read(Path.Combine("Samples", "metrics.json")))!;
        var refusal = Rules(root).First(r => r["expr"]!.ToJsonString().Contains("\"protocol\":\"ip\"", StringComparison.Ordinal) && r["expr"]!.ToJsonString().Contains("\"reject\"", StringComparison.Ordinal));
        refusal["expr"]!.AsArray().Insert(0, NfprotoMatch("ipv4"));
        refusal["expr"]!.AsArray().Insert(0, NfprotoMatch("ipv6"));

        Assert.That(Differences(root.ToJsonString(), "metrics.json"), Is.Not.Empty, refusal.ToJsonString());
    }

    [Test]
    public void A_redirect_narrowed_to_a_route_set_is_not_the_redirect()
    {
        // The IPv6 redirect given the IPv6 route set's match: it redirects only the permitted routes, and every other IPv6
        // connection to port 25 goes on to the guard (refused) instead of the daemon.
        var root = JsonNode.Parse(NetfilterTestData.Read(Path.Combine("Samples", "everything.json")))!;
        var rules = Rules(root).ToList();
        var route = rules.First(r => r["expr"]!.ToJsonString().Contains("\"protocol\":\"ip6\"", StringComparison.Ordinal));
        var redirect = rules.First(r => r["expr"]!.ToJsonString().Contains("\"redirect\"", StringComparison.Ordinal) && r["expr"]!.ToJsonString().Contains("\"ipv6\"", StringComparison.Ordinal));
        redirect["expr"]!.AsArray().Insert(1, route["expr"]!.AsArray().First(e => e!.ToJsonString().Contains("concat", StringComparison.Ordinal))!.DeepClone());

        Assert.That(Differences(root.ToJsonString(), "everything.json"), Is.Not.Empty, redirect.ToJsonString());
    }

    private static IEnumerable<JsonObject> Rules(JsonNode root) => root["nftables"]!.AsArray().Select(o => o?["rule"]).OfType<JsonObject>();

    private static JsonObject NfprotoMatch(string family) => new()
    {
        ["match"] = new JsonObject { ["op"] = "==", ["left"] = new JsonObject { ["meta"] = new JsonObject { ["key"] = "nfproto" } }, ["right"] = family },
    };

    // The spec each sample was captured from (SampleCapture), and the verifier of its table.
    private static IReadOnlyList<string> Differences(string listing, string sample)
    {
        using var document = JsonDocument.Parse(listing);
        return sample switch
        {
            "metrics.json" => RulesetVerifier.FindDifferences(document, MetricsRulesTests.Metrics),
            "metrics-v6-rate-limited.json" => RulesetVerifier.FindDifferences(document, MetricsRulesTests.MetricsV6),
            "guard-everything.json" => RulesetVerifier.FindGuardDifferences(document, RulesetRendererTests.Everything),
            _ => RulesetVerifier.FindDifferences(document, RulesetRendererTests.Everything),
        };
    }

    // Puts `meta nfproto F` first in every rule with an ip/ip6 address match (alone or in a concatenation): F the family
    // the address implies, or the other one.
    private static (string Listing, int Changed) WithNfproto(string sample, bool implied)
    {
        var root = JsonNode.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)))!;
        var changed = 0;
        foreach (var rule in root["nftables"]!.AsArray().Select(o => o?["rule"]).OfType<JsonObject>())
        {
            var expressions = rule["expr"]!.AsArray();
            var text = expressions.ToJsonString();
            var family = text.Contains("\"protocol\":\"ip6\"", StringComparison.Ordinal) ? "ipv6"
                : text.Contains("\"protocol\":\"ip\"", StringComparison.Ordinal) ? "ipv4"
                : null;
            if (family is null)
            {
                continue;
            }

            var written = implied ? family : family == "ipv4" ? "ipv6" : "ipv4";
            expressions.Insert(0, NfprotoMatch(written));
            changed++;
        }

        return (root.ToJsonString(), changed);
    }
}
