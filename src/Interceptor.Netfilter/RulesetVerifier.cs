using System.Globalization;
using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>
/// Compares what <c>nft -j list table inet NAME</c> reports with a <see cref="RulesetSpec"/>.
/// It checks meaning, not text: handles, counters, comments and the exact way nft chose to print a
/// match (a bare number, an anonymous set, a range) do not matter. Each difference is one sentence
/// an admin can act on.
/// </summary>
public static partial class RulesetVerifier
{
    // What each of our chains must be. nft prints the number; tolerate the symbolic name a newer nft might print.
    private static readonly (string Name, string Type, int Priority, string Symbol)[] ExpectedChains =
    [
        (RulesetSpec.FilterChainName, "filter", -150, "mangle"),
        (RulesetSpec.NatChainName, "nat", -100, "dstnat"),
    ];

    /// <summary>The differences; an empty list means the table does what the spec asks.</summary>
    public static IReadOnlyList<string> FindDifferences(JsonDocument listed, RulesetSpec spec)
    {
        ArgumentNullException.ThrowIfNull(listed);
        ArgumentNullException.ThrowIfNull(spec);

        var differences = new List<string>();
        var objects = NftJson.Objects(listed, spec.Table);
        if (!objects.Any(o => o.Kind == "table"))
        {
            differences.Add($"table inet {spec.Table} does not exist");
            return differences;
        }

        CheckNoTableFlags(objects, spec.Table, differences);
        CheckChains(objects, ExpectedChains, differences);
        CheckUidSet(objects, RulesetSpec.ExemptSetName, spec.ExemptUids, "these users would be intercepted", "these users bypass interception", differences);
        CheckUidSet(objects, RulesetSpec.SuspendedSetName, spec.SuspendedUids,
            "these suspended users are not refused by the kernel", "the kernel refuses these users although they are not suspended", differences);
        CheckUidRangeSet(objects, RulesetSpec.SuspendedSubordinateSetName, spec.SuspendedUidRanges,
            "the kernel refuses other subordinate uids than those of the suspended users", differences);
        CheckRouteSet(objects, RulesetSpec.AllowedRoutesV4SetName, "ipv4_addr", spec.AllowedRoutes.Where(r => !r.IsIPv6), differences);
        CheckRouteSet(objects, RulesetSpec.AllowedRoutesV6SetName, "ipv6_addr", spec.AllowedRoutes.Where(r => r.IsIPv6), differences);
        CheckFilterRules(objects, spec, differences);
        CheckNatRules(objects, spec, differences);
        return differences;
    }

    /// <summary>
    /// The suspended UIDs in a listing of the table or of the set alone
    /// (<c>nft -j list set inet TABLE suspended_uids</c>); null when the set is not there.
    /// </summary>
    public static IReadOnlyList<uint>? SuspendedUids(JsonDocument listed, string table)
    {
        ArgumentNullException.ThrowIfNull(listed);
        var set = FindSet(NftJson.Objects(listed, table), RulesetSpec.SuspendedSetName);
        if (set is null)
        {
            return null;
        }

        var (uids, invalid) = NftJson.UidElements(set.Body);
        return invalid.Count == 0
            ? [.. uids]
            : throw new NetfilterException($"set {RulesetSpec.SuspendedSetName} of table inet {table} holds an element that is not a UID: {Show(invalid[0])}");
    }

    private static void CheckChains(
        IReadOnlyList<NftJson.TableObject> objects, (string Name, string Type, int Priority, string Symbol)[] expectedChains, List<string> differences)
    {
        var chains = objects.Where(o => o.Kind == "chain").ToList();
        foreach (var extra in chains.Where(c => !expectedChains.Any(e => e.Name == NftJson.String(c.Body, "name"))))
        {
            differences.Add($"unexpected chain {NftJson.String(extra.Body, "name")} (the table should hold only {string.Join(" and ", expectedChains.Select(e => e.Name))})");
        }

        foreach (var (name, type, expectedPriority, symbol) in expectedChains)
        {
            var chain = chains.FirstOrDefault(c => NftJson.String(c.Body, "name") == name);
            if (chain is null)
            {
                differences.Add($"chain {name} is missing");
                continue;
            }

            Expect(differences, $"chain {name}: type", NftJson.String(chain.Body, "type"), type);
            Expect(differences, $"chain {name}: hook", NftJson.String(chain.Body, "hook"), "output");

            var priority = chain.Body.TryGetProperty("prio", out var prio) ? prio : default;
            var priorityOk = priority.ValueKind switch
            {
                JsonValueKind.Number => priority.TryGetInt32(out var number) && number == expectedPriority,
                JsonValueKind.String => priority.GetString() == symbol,
                _ => false,
            };
            if (!priorityOk)
            {
                differences.Add($"chain {name} has priority {Show(priority)}, expected {expectedPriority} ({symbol})");
            }

            // A drop policy in an output hook would cut the host off entirely; say so before anything else does.
            var policy = NftJson.String(chain.Body, "policy");
            if (policy is not null && policy != "accept")
            {
                differences.Add($"chain {name} has policy {policy}, expected accept");
            }
        }
    }

    /// <summary>
    /// We create our tables without flags. A dormant one (<c>nft add table inet NAME { flags dormant; }</c>) keeps every
    /// chain and rule in its listing and runs none of them: no redirect, no refusal; an owned one cannot be changed by
    /// anyone but its owner. So any flag is a difference. nft 1.0.6 prints a table's flags in JSON as its family
    /// ("inet"), a bug, so the flag is named only when nft names it.
    /// </summary>
    private static void CheckNoTableFlags(IReadOnlyList<NftJson.TableObject> objects, string table, List<string> differences)
    {
        var body = objects.First(o => o.Kind == "table").Body;
        if (!body.TryGetProperty("flags", out var flags))
        {
            return;
        }

        List<JsonElement> listed = flags.ValueKind == JsonValueKind.Array ? [.. flags.EnumerateArray()] : [flags];
        var names = listed.Select(f => f.ValueKind == JsonValueKind.String ? f.GetString() : null).Where(n => n is "dormant" or "owner" or "persist").ToList();
        var which = names.Count > 0 ? string.Join(", ", names) : "see nft list table inet " + table;
        differences.Add($"table inet {table} has flags ({which}), which smtp-interceptor never sets: a dormant table runs none of its chains");
    }

    private static NftJson.TableObject? FindSet(IReadOnlyList<NftJson.TableObject> objects, string name) =>
        objects.FirstOrDefault(o => o.Kind == "set" && NftJson.String(o.Body, "name") == name);

    private static void CheckUidSet(
        IReadOnlyList<NftJson.TableObject> objects, string name, IReadOnlyList<uint> expected, string ifMissing, string ifExtra, List<string> differences)
    {
        var set = FindSet(objects, name);
        if (set is null)
        {
            differences.Add($"set {name} is missing");
            return;
        }

        Expect(differences, $"set {name}: type", NftJson.String(set.Body, "type"), "uid");

        var (listedUids, invalid) = NftJson.UidElements(set.Body);
        foreach (var element in invalid)
        {
            differences.Add($"set {name} holds an element that is not a UID: {Show(element)}");
        }

        var missing = expected.Where(uid => !listedUids.Contains(uid)).ToList();
        if (missing.Count > 0)
        {
            differences.Add($"{Lacks(name)}{Join(missing)}: {ifMissing}");
        }

        var extra = listedUids.Where(uid => !expected.Contains(uid)).ToList();
        if (extra.Count > 0)
        {
            differences.Add($"{HoldsUnexpected(name)}{Join(extra)}: {ifExtra}");
        }
    }

    /// <summary>
    /// True for a difference in which users the suspension sets hold, as a suspension or a lift still on its way from
    /// the registry to nft explains it, and not in the table's structure (a set, rule or chain changed or gone).
    /// </summary>
    public static bool IsSuspensionMembership(string difference) =>
        difference is not null
        && (difference.StartsWith(Lacks(RulesetSpec.SuspendedSetName), StringComparison.Ordinal)
            || difference.StartsWith(HoldsUnexpected(RulesetSpec.SuspendedSetName), StringComparison.Ordinal)
            || difference.StartsWith(RangesHeld(RulesetSpec.SuspendedSubordinateSetName), StringComparison.Ordinal));

    private static string Lacks(string set) => $"set {set} lacks UID(s) ";

    private static string HoldsUnexpected(string set) => $"set {set} holds unexpected UID(s) ";

    private static string RangesHeld(string set) => $"set {set} holds [";

    private static void CheckRouteSet(
        IReadOnlyList<NftJson.TableObject> objects, string name, string addressType, IEnumerable<AllowedRoute> expectedRoutes, List<string> differences)
    {
        var set = FindSet(objects, name);
        if (set is null)
        {
            differences.Add($"set {name} is missing");
            return;
        }

        // A concatenated type is printed as an array of its parts.
        string[] expectedType = ["uid", addressType, "inet_service"];
        var type = set.Body.TryGetProperty("type", out var t) ? t : default;
        var parts = type.ValueKind == JsonValueKind.Array
            ? type.EnumerateArray().Select(p => p.ValueKind == JsonValueKind.String ? p.GetString() : p.GetRawText()).ToList()
            : null;
        if (parts is null || !parts.SequenceEqual(expectedType))
        {
            var actual = parts is null ? Show(type) : string.Join(" . ", parts);
            differences.Add($"set {name}: type is {actual}, expected {string.Join(" . ", expectedType)}");
            return;
        }

        var (listed, invalid) = NftJson.RouteElements(set.Body);
        foreach (var element in invalid)
        {
            differences.Add($"set {name} holds an element that is not uid . address . port: {Show(element)}");
        }

        var expected = expectedRoutes.ToList();
        var missing = expected.Where(r => !listed.Contains(r)).ToList();
        if (missing.Count > 0)
        {
            differences.Add($"set {name} lacks route(s) {string.Join(", ", missing)}: these connections would be intercepted");
        }

        var extra = listed.Where(r => !expected.Contains(r)).ToList();
        if (extra.Count > 0)
        {
            differences.Add($"set {name} holds unexpected route(s) {string.Join(", ", extra)}: these connections bypass interception");
        }
    }

    private static List<NftJson.Rule> RulesOf(IReadOnlyList<NftJson.TableObject> objects, string chain) =>
        [.. objects
            .Where(o => o.Kind == "rule" && NftJson.String(o.Body, "chain") == chain)
            .Select(o => NftJson.ParseRule(o.Body, objects))];

    private static void CheckFilterRules(IReadOnlyList<NftJson.TableObject> objects, RulesetSpec spec, List<string> differences)
    {
        const string chain = RulesetSpec.FilterChainName;
        var rules = RulesOf(objects, chain);
        var isOurs = new bool[rules.Count];
        CheckOpenConnectionsPass(rules, chain, isOurs, differences);

        CheckMetricsRules(objects, rules, spec, isOurs, differences);

        // Exempt users must pass before any refusal, on every port this chain refuses (the metrics endpoint's is not one).
        var firstReject = rules.FindIndex(r => r.Rejects && r.Metrics == NftJson.MetricsRule.None);
        var exempt = rules.FindIndex(r => r.Accepts && r.SkuidSet == RulesetSpec.ExemptSetName && r.RouteSet is null);
        if (exempt < 0)
        {
            differences.Add($"no rule in chain {chain} accepts the users in set {RulesetSpec.ExemptSetName}: blocked ports and suspensions would apply to them too, the daemon included");
        }
        else
        {
            isOurs[exempt] = true;
            if (firstReject >= 0 && exempt > firstReject)
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} in chain {chain} comes after a reject rule, so exempt users can be refused");
            }

            var uncovered = spec.Ports.Concat(spec.BlockedPorts).Append(spec.ListenPort).Order().Where(p => !rules[exempt].Covers(p)).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} in chain {chain} does not cover port(s) {Join(uncovered)}");
            }
        }

        var suspended = rules.FindIndex(r => r.Rejects && r.SkuidSet == RulesetSpec.SuspendedSetName && r.RouteSet is null);
        if (suspended < 0)
        {
            differences.Add($"no rule in chain {chain} refuses the users in set {RulesetSpec.SuspendedSetName}: suspended users would still reach smtp-interceptor");
        }
        else
        {
            isOurs[suspended] = true;
            var uncovered = spec.Ports.Where(p => !rules[suspended].Covers(p)).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"the rule for set {RulesetSpec.SuspendedSetName} does not cover port(s) {Join(uncovered)}");
            }
        }

        var subordinates = rules.FindIndex(r => r.Rejects && r.SkuidSet == RulesetSpec.SuspendedSubordinateSetName && r.RouteSet is null);
        if (subordinates < 0)
        {
            differences.Add($"no rule in chain {chain} refuses the uids in set {RulesetSpec.SuspendedSubordinateSetName}: suspended users could still send through their subordinate uids");
        }
        else
        {
            isOurs[subordinates] = true;
            var uncovered = spec.Ports.Where(p => !rules[subordinates].Covers(p)).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"the rule for set {RulesetSpec.SuspendedSubordinateSetName} does not cover port(s) {Join(uncovered)}");
            }
        }

        // Blocked ports: rules that reject only blocked ports, without matching a user. A reject rule for any
        // other port refuses connections the configuration allows, so it stays unexpected.
        if (spec.BlockedPorts.Count > 0)
        {
            var blocking = Enumerable.Range(0, rules.Count)
                .Where(i => rules[i].Rejects && rules[i].SkuidSet is null && rules[i].RouteSet is null && !rules[i].HasOtherMatch
                    && rules[i].Dports is { } ranges && ranges.All(r => Enumerable.Range(r.Low, r.High - r.Low + 1).All(spec.BlockedPorts.Contains)))
                .ToList();
            foreach (var i in blocking)
            {
                isOurs[i] = true;
            }

            var uncovered = spec.BlockedPorts.Where(p => !blocking.Any(i => rules[i].Covers(p))).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"no rule in chain {chain} refuses blocked port(s) {Join(uncovered)}: non-exempt users can connect to them");
            }
        }

        CheckRateLimits(objects, rules, spec, isOurs, exempt, differences);

        // The table is ours alone: anything else was added by hand or by another program.
        for (var i = 0; i < rules.Count; i++)
        {
            if (!isOurs[i])
            {
                differences.Add($"unexpected rule in chain {chain}: it {rules[i].Describe()}");
            }
        }
    }

    private static void CheckNatRules(IReadOnlyList<NftJson.TableObject> objects, RulesetSpec spec, List<string> differences)
    {
        var rules = RulesOf(objects, RulesetSpec.NatChainName);

        // The exempt rule must precede every redirect: the daemon's own upstream connections depend on it.
        var firstRedirect = rules.FindIndex(r => r.RedirectPort is not null);
        var exempt = rules.FindIndex(r => r.Accepts && r.SkuidSet == RulesetSpec.ExemptSetName && r.RouteSet is null);
        if (exempt < 0)
        {
            differences.Add($"no rule accepts the users in set {RulesetSpec.ExemptSetName}: they would be intercepted too, the daemon included");
        }
        else
        {
            if (firstRedirect >= 0 && exempt > firstRedirect)
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} comes after a redirect rule, so it never applies");
            }

            var uncovered = spec.Ports.Where(p => !rules[exempt].Covers(p)).ToList();
            if (uncovered.Count > 0)
            {
                differences.Add($"the rule for set {RulesetSpec.ExemptSetName} does not cover port(s) {Join(uncovered)}");
            }
        }

        var routeV4 = CheckRouteRule(rules, RulesetSpec.AllowedRoutesV4SetName, "ip", "IPv4", firstRedirect, differences);
        var routeV6 = CheckRouteRule(rules, RulesetSpec.AllowedRoutesV6SetName, "ip6", "IPv6", firstRedirect, differences);

        if (spec.Lockdown)
        {
            // The lockdown form has no redirect at all: one to the listener port would hand connections to its holder.
            if (firstRedirect >= 0)
            {
                differences.Add($"chain {RulesetSpec.NatChainName} redirects although the table should be in lockdown (smtp-interceptor does not own port {spec.ListenPort})");
            }
        }
        else
        {
            CheckRedirects(rules, spec, "ipv4", "IPv4", differences);
            CheckRedirects(rules, spec, "ipv6", "IPv6", differences);
        }

        // The table is ours alone: anything else in the chain was added by hand or by another program,
        // and could let connections escape interception or send them somewhere else.
        for (var i = 0; i < rules.Count; i++)
        {
            var expected = i == exempt || i == routeV4 || i == routeV6 || (!spec.Lockdown && rules[i].RedirectPort == spec.ListenPort && !rules[i].HasOtherMatch);
            if (!expected)
            {
                differences.Add($"unexpected rule in chain {RulesetSpec.NatChainName}: it {rules[i].Describe()}");
            }
        }
    }

    // The accept rule for one route set: exactly `meta skuid . ip[6] daddr . tcp dport @SET accept`, before the redirects.
    private static int CheckRouteRule(List<NftJson.Rule> rules, string set, string family, string familyName, int firstRedirect, List<string> differences)
    {
        // An explicit `meta nfproto` that `ip daddr` implies is read as absent (NftJson.ParseRule); any other narrows.
        var index = rules.FindIndex(r => r.Accepts && r.RouteSet == set && r.RouteFamily == family
            && r.SkuidSet is null && r.Dports is null && !r.HasOtherMatch);
        if (index < 0)
        {
            differences.Add($"no rule accepts the routes in set {set}: those users' {familyName} connections would be intercepted");
        }
        else if (firstRedirect >= 0 && index > firstRedirect)
        {
            differences.Add($"the rule for set {set} comes after a redirect rule, so it never applies");
        }

        return index;
    }

    private static void CheckRedirects(List<NftJson.Rule> rules, RulesetSpec spec, string nfproto, string family, List<string> differences)
    {
        // A redirect without a family match applies to both families.
        var redirects = rules.Where(r => r.RedirectPort is not null && (r.Nfproto is null || r.Nfproto == nfproto)).ToList();
        var toListener = redirects.Where(r => r.RedirectPort == spec.ListenPort).ToList();
        if (toListener.Count == 0)
        {
            differences.Add($"no {family} rule redirects to port {spec.ListenPort}: {family} SMTP connections would not reach smtp-interceptor");
            return;
        }

        var uncovered = spec.Ports.Where(p => !toListener.Any(r => r.Covers(p))).ToList();
        if (uncovered.Count > 0)
        {
            differences.Add($"no {family} redirect to port {spec.ListenPort} covers destination port(s) {Join(uncovered)}");
        }
    }

    private static void Expect(List<string> differences, string what, string? actual, string expected)
    {
        if (actual != expected)
        {
            differences.Add($"{what} is {actual ?? "missing"}, expected {expected}");
        }
    }

    private static string Join<T>(IEnumerable<T> values) =>
        string.Join(", ", values.Select(v => Convert.ToString(v, CultureInfo.InvariantCulture)));

    private static string Show(JsonElement element) =>
        element.ValueKind == JsonValueKind.Undefined ? "missing" : element.GetRawText();
}
