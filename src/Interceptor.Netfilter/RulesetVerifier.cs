using System.Globalization;
using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>
/// Compares what <c>nft -j list table inet NAME</c> reports with a <see cref="RulesetSpec"/>.
/// It checks meaning, not text: handles, counters, comments and the exact way nft chose to print a
/// match (a bare number, an anonymous set, a range) do not matter. Each difference is one sentence
/// an admin can act on.
/// </summary>
public static class RulesetVerifier
{
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

        CheckChains(objects, differences);
        CheckExemptSet(objects, spec, differences);
        CheckRules(objects, spec, differences);
        return differences;
    }

    private static void CheckChains(IReadOnlyList<NftJson.TableObject> objects, List<string> differences)
    {
        var chains = objects.Where(o => o.Kind == "chain").ToList();
        foreach (var extra in chains.Where(c => NftJson.String(c.Body, "name") != RulesetSpec.ChainName))
        {
            differences.Add($"unexpected chain {NftJson.String(extra.Body, "name")} (the table should hold only {RulesetSpec.ChainName})");
        }

        var chain = chains.FirstOrDefault(c => NftJson.String(c.Body, "name") == RulesetSpec.ChainName);
        if (chain is null)
        {
            differences.Add($"chain {RulesetSpec.ChainName} is missing");
            return;
        }

        Expect(differences, "type", NftJson.String(chain.Body, "type"), "nat");
        Expect(differences, "hook", NftJson.String(chain.Body, "hook"), "output");

        // nft prints the number; tolerate the symbolic name a newer nft might print instead.
        var priority = chain.Body.TryGetProperty("prio", out var prio) ? prio : default;
        var priorityOk = priority.ValueKind switch
        {
            JsonValueKind.Number => priority.TryGetInt32(out var number) && number == -100,
            JsonValueKind.String => priority.GetString() == "dstnat",
            _ => false,
        };
        if (!priorityOk)
        {
            differences.Add($"chain {RulesetSpec.ChainName} has priority {Show(priority)}, expected -100 (dstnat)");
        }

        // A drop policy in an output hook would cut the host off entirely; say so before anything else does.
        var policy = NftJson.String(chain.Body, "policy");
        if (policy is not null && policy != "accept")
        {
            differences.Add($"chain {RulesetSpec.ChainName} has policy {policy}, expected accept");
        }
    }

    private static void CheckExemptSet(IReadOnlyList<NftJson.TableObject> objects, RulesetSpec spec, List<string> differences)
    {
        var set = objects.FirstOrDefault(o => o.Kind == "set" && NftJson.String(o.Body, "name") == RulesetSpec.ExemptSetName);
        if (set is null)
        {
            differences.Add($"set {RulesetSpec.ExemptSetName} is missing");
            return;
        }

        Expect(differences, $"set {RulesetSpec.ExemptSetName}: type", NftJson.String(set.Body, "type"), "uid");

        var listedUids = new SortedSet<uint>();
        foreach (var element in NftJson.SetElements(set.Body))
        {
            if (element.ValueKind == JsonValueKind.Number && element.TryGetUInt32(out var uid))
            {
                listedUids.Add(uid);
            }
            else
            {
                differences.Add($"set {RulesetSpec.ExemptSetName} holds an element that is not a UID: {Show(element)}");
            }
        }

        var missing = spec.ExemptUids.Where(uid => !listedUids.Contains(uid)).ToList();
        if (missing.Count > 0)
        {
            differences.Add($"set {RulesetSpec.ExemptSetName} lacks UID(s) {Join(missing)}: these users would be intercepted");
        }

        var extra = listedUids.Where(uid => !spec.ExemptUids.Contains(uid)).ToList();
        if (extra.Count > 0)
        {
            differences.Add($"set {RulesetSpec.ExemptSetName} holds unexpected UID(s) {Join(extra)}: these users bypass interception");
        }
    }

    private static void CheckRules(IReadOnlyList<NftJson.TableObject> objects, RulesetSpec spec, List<string> differences)
    {
        var rules = objects
            .Where(o => o.Kind == "rule" && NftJson.String(o.Body, "chain") == RulesetSpec.ChainName)
            .Select(o => NftJson.ParseRule(o.Body, objects))
            .ToList();

        // The exempt rule must precede every redirect: the daemon's own upstream connections depend on it.
        var firstRedirect = rules.FindIndex(r => r.RedirectPort is not null);
        var exempt = rules.FindIndex(r => r.Accepts && r.SkuidSet == RulesetSpec.ExemptSetName);
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

        CheckRedirects(rules, spec, "ipv4", "IPv4", differences);
        CheckRedirects(rules, spec, "ipv6", "IPv6", differences);

        // The table is ours alone: anything else in the chain was added by hand or by another program,
        // and could let connections escape interception or send them somewhere else.
        for (var i = 0; i < rules.Count; i++)
        {
            var expected = i == exempt || (rules[i].RedirectPort == spec.ListenPort && !rules[i].HasOtherMatch);
            if (!expected)
            {
                differences.Add($"unexpected rule in chain {RulesetSpec.ChainName}: it {rules[i].Describe()}");
            }
        }
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
            var prefix = what.StartsWith("set ", StringComparison.Ordinal) ? what : $"chain {RulesetSpec.ChainName}: {what}";
            differences.Add($"{prefix} is {actual ?? "missing"}, expected {expected}");
        }
    }

    private static string Join<T>(IEnumerable<T> values) =>
        string.Join(", ", values.Select(v => Convert.ToString(v, CultureInfo.InvariantCulture)));

    private static string Show(JsonElement element) =>
        element.ValueKind == JsonValueKind.Undefined ? "missing" : element.GetRawText();
}
