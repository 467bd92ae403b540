namespace Interceptor.Netfilter;

/// <summary>The metrics endpoint's set and five rules (see RulesetSpec.Metrics.cs for what they are for).</summary>
public static partial class RulesetVerifier
{
    /// <summary>
    /// With an endpoint: the set holds exactly the scrapers, and before the pass for open connections the three rules for
    /// what leaves the endpoint's port (<see cref="CheckImpostorDrop"/>), one accepting the scrapers' SYNs to the endpoint,
    /// then one refusing everyone else's. Without: no such rule (any is reported as unexpected by the caller, as it is left unmarked).
    /// </summary>
    private static void CheckMetricsRules(
        IReadOnlyList<NftJson.TableObject> objects, List<NftJson.Rule> rules, RulesetSpec spec, bool[] isOurs, List<string> differences)
    {
        if (spec.MetricsEndpoint is not { } metrics)
        {
            return;
        }

        const string chain = RulesetSpec.FilterChainName;
        const string set = RulesetSpec.MetricsUsersSetName;
        CheckUidSet(objects, set, spec.MetricsUids,
            "these users' scrapes are refused by the kernel", "these users may connect to the metrics endpoint", differences);

        bool IsFor(NftJson.Rule r, NftJson.MetricsRule kind) =>
            r.Metrics == kind && metrics.Address.Equals(r.Daddr) && r.Dports![0].Low == metrics.Port;
        var accept = rules.FindIndex(r => IsFor(r, NftJson.MetricsRule.AcceptsScrapers));
        var refuse = rules.FindIndex(r => IsFor(r, NftJson.MetricsRule.RefusesOthers));
        var pass = rules.FindIndex(r => r.IsOpenConnectionsPass);
        CheckImpostorDrop(rules, spec, metrics, pass, isOurs, differences);
        if (accept < 0)
        {
            differences.Add($"no rule in chain {chain} lets the users in set {set} connect to the metrics endpoint {metrics}: the scraper is refused");
        }
        else
        {
            isOurs[accept] = true;
        }

        if (refuse < 0)
        {
            differences.Add($"no rule in chain {chain} refuses other users' connections to the metrics endpoint {metrics}: any local user can flood it and keep the scraper out");
        }
        else
        {
            isOurs[refuse] = true;
            if (accept > refuse)
            {
                differences.Add($"the rule for set {set} in chain {chain} comes after the refusal at the metrics endpoint {metrics}, so the scraper is refused");
            }
        }

        // Another rule that accepts the endpoint's port before the refusal (the exempt users' rule widened and moved up,
        // say) lets its users through whatever the set says.
        var shadowing = rules.Take(Math.Max(refuse, 0)).Select((r, i) => (Rule: r, Index: i)).FirstOrDefault(x =>
            x.Index != accept && x.Rule.Accepts && x.Rule.Dports is { } ports && ports.Any(p => p.Low <= metrics.Port && metrics.Port <= p.High)).Rule;
        if (shadowing is not null)
        {
            differences.Add($"a rule in chain {chain} accepts port {metrics.Port} before the refusal at the metrics endpoint {metrics}: it {shadowing.Describe()}");
        }

        if (pass >= 0 && (accept > pass || refuse > pass))
        {
            differences.Add($"the rules for the metrics endpoint {metrics} in chain {chain} come after the rule for open connections, which lets a SYN that conntrack files under a known connection through first");
        }
    }

    /// <summary>
    /// The three rules for what leaves the endpoint's port towards a local socket (through lo, on any address): the daemon's
    /// own accepted first, then every other SYN-ACK dropped (socketless ones too), and other users' sockets' packets
    /// dropped; all before the pass.
    /// </summary>
    private static void CheckImpostorDrop(
        List<NftJson.Rule> rules, RulesetSpec spec, System.Net.IPEndPoint metrics, int pass, bool[] isOurs, List<string> differences)
    {
        const string chain = RulesetSpec.FilterChainName;
        var uid = spec.MetricsServerUid;
        bool IsFor(NftJson.Rule r, NftJson.MetricsRule kind) => r.Metrics == kind && r.Sport == metrics.Port;
        var own = rules.FindIndex(r => IsFor(r, NftJson.MetricsRule.AcceptsServer) && r.SkuidValue == uid);
        var synAcks = rules.FindIndex(r => IsFor(r, NftJson.MetricsRule.DropsOtherSynAcks));
        var others = rules.FindIndex(r => IsFor(r, NftJson.MetricsRule.DropsImpostors) && r.SkuidNotValue == uid);
        var missing = new List<string>();
        foreach (var (index, what) in new[] { (own, $"accepts what uid {uid}'s sockets send"), (synAcks, "drops every other SYN-ACK"), (others, $"drops what sockets not of uid {uid} send") })
        {
            if (index < 0)
            {
                missing.Add(what);
            }
            else
            {
                isOurs[index] = true;
            }
        }

        if (missing.Count > 0)
        {
            differences.Add($"no rule in chain {chain} {string.Join(" or ", missing)} from the metrics endpoint {metrics}: "
                + "a user who takes its port while the daemon is down can answer the scrapers, or the daemon cannot");
            return;
        }

        if (synAcks < own)
        {
            differences.Add($"the drop of SYN-ACKs from the metrics endpoint {metrics} in chain {chain} comes before the accept of the daemon's own, so no scrape connects");
        }

        if (pass >= 0 && (synAcks > pass || others > pass))
        {
            differences.Add($"the drops of other users' answers at the metrics endpoint {metrics} in chain {chain} come after the rule for open connections, which lets them out first");
        }

        // Another rule accepting before the drops may let a squatter's answers out.
        var first = Math.Min(synAcks, others);
        if (rules.Take(first).Where((_, i) => i != pass && i != own).FirstOrDefault(r => r.Accepts) is { } before)
        {
            differences.Add($"a rule in chain {chain} accepts before the drop of other users' answers at the metrics endpoint {metrics}: it {before.Describe()}");
        }
    }
}
