using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>The guard table's checks (see RulesetRenderer.Guard.cs for what the guard is for).</summary>
public static partial class RulesetVerifier
{
    private static readonly (string Name, string Type, int Priority, string Symbol)[] ExpectedGuardChains =
    [
        (RulesetSpec.GuardChainName, "filter", 0, "filter"),
    ];

    /// <summary>
    /// The differences between <c>nft -j list table inet TABLE_guard</c> and the spec, each prefixed with the guard
    /// table's name so that an admin can tell them from the main table's; empty when the guard does what it should.
    /// </summary>
    public static IReadOnlyList<string> FindGuardDifferences(JsonDocument listed, RulesetSpec spec)
    {
        ArgumentNullException.ThrowIfNull(listed);
        ArgumentNullException.ThrowIfNull(spec);

        var differences = new List<string>();
        var objects = NftJson.Objects(listed, spec.GuardTable);
        if (!objects.Any(o => o.Kind == "table"))
        {
            return [$"table inet {spec.GuardTable} does not exist"];
        }

        CheckNoTableFlags(objects, spec.GuardTable, differences);
        CheckChains(objects, ExpectedGuardChains, differences);
        CheckUidSet(objects, RulesetSpec.ExemptSetName, spec.ExemptUids, "these users would be refused", "these users may bypass interception", differences);
        CheckRouteSet(objects, RulesetSpec.AllowedRoutesV4SetName, "ipv4_addr", spec.AllowedRoutes.Where(r => !r.IsIPv6), differences);
        CheckRouteSet(objects, RulesetSpec.AllowedRoutesV6SetName, "ipv6_addr", spec.AllowedRoutes.Where(r => r.IsIPv6), differences);
        CheckGuardRules(objects, spec, differences);
        return [.. differences.Select(d => $"table inet {spec.GuardTable}: {d}")];
    }

    private static void CheckGuardRules(IReadOnlyList<NftJson.TableObject> objects, RulesetSpec spec, List<string> differences)
    {
        const string chain = RulesetSpec.GuardChainName;
        var rules = RulesOf(objects, chain);
        var isOurs = new bool[rules.Count];
        var guarded = spec.Ports.Concat(spec.BlockedPorts).Order().ToList();
        CheckOpenConnectionsPass(rules, chain, isOurs, differences);
        CheckStrayRules(rules, chain, spec, guarded, isOurs, differences);

        // The refusal: every guarded port, no user or route match, so nothing escapes it but what was accepted before.
        var reject = rules.FindIndex(r => r.Rejects && r.SkuidSet is null && r.RouteSet is null && !r.HasOtherMatch);
        if (reject < 0)
        {
            differences.Add($"no rule in chain {chain} refuses what was not redirected: while table inet {spec.Table} is missing, customers' SMTP gets out directly");
        }
        else
        {
            isOurs[reject] = true;
            var uncovered = guarded.Where(p => !rules[reject].Covers(p)).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"the refusing rule in chain {chain} does not cover port(s) {Join(uncovered)}");
            }
        }

        // The exceptions must come before the refusal, or exempt users (the daemon itself among them) are refused.
        var exempt = rules.FindIndex(r => r.Accepts && r.SkuidSet == RulesetSpec.ExemptSetName && r.RouteSet is null);
        if (exempt < 0)
        {
            differences.Add($"no rule in chain {chain} accepts the users in set {RulesetSpec.ExemptSetName}: the daemon's own upstream connections would be refused");
        }
        else
        {
            isOurs[exempt] = true;
            if (reject >= 0 && exempt > reject)
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} in chain {chain} comes after the refusal, so exempt users are refused");
            }

            // In every state and before the refusal of SYNs of known connections, which has no user match of its own.
            var syn = rules.FindIndex(r => r.Stray == NftJson.StrayRule.RefusesKnownSyn);
            if (rules[exempt].NewOnly || (syn >= 0 && exempt > syn))
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} in chain {chain} does not accept every packet of exempt users before the refusal of SYNs of known connections: a stale conntrack entry can make the daemon's own connections fail");
            }

            var uncovered = guarded.Where(p => !rules[exempt].Covers(p)).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} in chain {chain} does not cover port(s) {Join(uncovered)}");
            }
        }

        foreach (var (set, family) in new[] { (RulesetSpec.AllowedRoutesV4SetName, "ip"), (RulesetSpec.AllowedRoutesV6SetName, "ip6") })
        {
            var route = rules.FindIndex(r => r.Accepts && r.RouteSet == set && r.RouteFamily == family && r.SkuidSet is null && r.Dports is null && !r.HasOtherMatch);
            if (route < 0)
            {
                differences.Add($"no rule in chain {chain} accepts the routes in set {set}: those connections would be refused");
                continue;
            }

            isOurs[route] = true;
            if (reject >= 0 && route > reject)
            {
                differences.Add($"the rule for set {set} in chain {chain} comes after the refusal, so those routes are refused");
            }
        }

        for (var i = 0; i < rules.Count; i++)
        {
            if (!isOurs[i])
            {
                differences.Add($"unexpected rule in chain {chain}: it {rules[i].Describe()}");
            }
        }
    }
}
