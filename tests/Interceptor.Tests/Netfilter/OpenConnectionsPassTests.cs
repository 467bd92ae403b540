using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// The first rule of each filter chain, <c>ct state established,related accept</c> (RulesetRenderer.OpenConnectionsPass):
/// packets of open connections leave at once. The samples are real nft listings (see <see cref="SampleCapture"/>).
/// </summary>
public class OpenConnectionsPassTests
{
    private static readonly RulesetSpec DefaultSpec = new("smtp_interceptor", 10025, [25], [0]);

    [Test]
    public void Both_filter_chains_start_with_it_and_the_nat_chain_has_none()
    {
        var script = RulesetRenderer.Render(DefaultSpec);
        var chains = script.Split("chain ")[1..].ToDictionary(c => c[..c.IndexOf(' ', StringComparison.Ordinal)], RulesOf);

        Assert.That(chains[RulesetSpec.FilterChainName][0], Does.StartWith("ct state established,related accept comment"));
        Assert.That(chains[RulesetSpec.GuardChainName][0], Does.StartWith("tcp dport 25 meta skuid @exempt_uids counter accept"), "the guard's exempt users come before it");
        Assert.That(chains[RulesetSpec.GuardChainName][1], Does.StartWith("tcp dport 25 tcp flags syn / syn,ack ct state established,related counter reject"),
            "the guard's refusal of SYNs of known connections comes before it");
        Assert.That(chains[RulesetSpec.GuardChainName][2], Does.StartWith("ct state established,related accept comment"));
        Assert.That(chains[RulesetSpec.NatChainName], Has.None.Contains("ct state"), "a NAT chain sees only first packets");
    }

    [Test]
    public void The_guard_as_installed_matches()
    {
        Assert.That(GuardDifferences("guard-default.json"), Is.Empty);
    }

    [Test]
    public void A_pass_that_also_admits_new_connections_is_not_ours()
    {
        // Such a rule would let every first packet out before the refusals: suspended users, blocked ports and rate limits
        // would no longer apply. It must not be taken for the pass.
        var differences = Differences("open-pass-admits-new.json");

        Assert.That(differences, Has.Count.EqualTo(2));
        Assert.That(differences[0], Does.StartWith("chain output_filter does not start with ct state established,related accept"));
        Assert.That(differences[1], Does.StartWith("unexpected rule in chain output_filter: it accepts"));
    }

    [Test]
    public void The_same_in_the_guard_is_not_ours_either()
    {
        var differences = GuardDifferences("guard-open-pass-admits-new.json");

        Assert.That(differences, Has.Count.EqualTo(2));
        Assert.That(differences[0], Does.StartWith("table inet smtp_interceptor_guard: chain output_guard does not start with ct state established,related accept"));
        Assert.That(differences[1], Does.StartWith("table inet smtp_interceptor_guard: unexpected rule in chain output_guard: it accepts"));
    }

    [Test]
    public void A_missing_pass_is_reported()
    {
        Assert.That(Differences("open-pass-missing.json"), Is.EqualTo(new[]
        {
            "chain output_filter does not start with ct state established,related accept: every packet of the host's open connections goes through all its rules",
        }));
        Assert.That(GuardDifferences("guard-open-pass-missing.json"), Is.EqualTo(new[]
        {
            "table inet smtp_interceptor_guard: chain output_guard does not start with ct state established,related accept: every packet of the host's open connections goes through all its rules",
        }));
    }

    [Test]
    public void A_pass_after_other_rules_is_reported()
    {
        Assert.That(Differences("open-pass-not-first.json"), Is.EqualTo(new[]
        {
            "the rule for open connections in chain output_filter is not its first: packets of open connections go through the rules before it",
        }));
    }

    [Test]
    public void A_refusal_for_open_connections_only_is_no_refusal()
    {
        // ct state established on the suspension rule: it refuses nothing a suspended user opens. Understanding the
        // open states for the pass must not make such a rule pass for ours (attack review of the pass).
        Assert.That(Differences("suspended-rule-for-open-connections.json"), Is.EqualTo(new[]
        {
            "the rule for set suspended_uids does not cover port(s) 25",
        }));
    }

    private static List<string> RulesOf(string chain)
    {
        // The chain's lines after its header: type line, comment line(s), then rules.
        var lines = chain.Split('\n').Skip(1).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("type ", StringComparison.Ordinal)
            && !l.StartsWith("comment ", StringComparison.Ordinal) && !l.StartsWith('#'));
        return [.. lines.TakeWhile(l => l != "}")];
    }

    private static IReadOnlyList<string> Differences(string sample)
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindDifferences(listed, DefaultSpec);
    }

    private static IReadOnlyList<string> GuardDifferences(string sample)
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindGuardDifferences(listed, DefaultSpec);
    }
}
