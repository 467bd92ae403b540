using System.Net;
using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>The metrics endpoint's two rules (RulesetRenderer.Metrics.cs).</summary>
internal static partial class NftJson
{
    /// <summary>Which of the two a rule is, if it is exactly one of them.</summary>
    internal enum MetricsRule
    {
        None,

        /// <summary><c>ip daddr A tcp dport P tcp flags syn / syn,ack meta skuid @metrics_users accept</c>.</summary>
        AcceptsScrapers,

        /// <summary><c>ip daddr A tcp dport P tcp flags syn / syn,ack reject</c>: no user match, so a socketless SYN is refused too.</summary>
        RefusesOthers,
    }

    internal sealed partial record Rule
    {
        /// <summary>The address of an <c>ip daddr A</c> or <c>ip6 daddr A</c> match (one address, nothing else), null without.</summary>
        public IPAddress? Daddr { get; set; }

        /// <summary>Set once the rule is read. Any other rule with an address match has <see cref="HasOtherMatch"/>.</summary>
        public MetricsRule Metrics { get; set; }
    }

    // {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "127.0.0.1"}}; a prefix, range or set
    // on the right is not one of ours and stays another match.
    private static bool ReadAddressMatch(Rule rule, JsonElement left, JsonElement right)
    {
        var isDaddr = left.ValueKind == JsonValueKind.Object && left.TryGetProperty("payload", out var payload)
            && String(payload, "field") == "daddr" && String(payload, "protocol") is "ip" or "ip6";
        if (!isDaddr || right.ValueKind != JsonValueKind.String || !IPAddress.TryParse(right.GetString(), out var address))
        {
            return false;
        }

        rule.HasOtherMatch |= rule.Daddr is not null;
        rule.Daddr = address;
        return true;
    }

    /// <summary>
    /// Names the rule when it is exactly one of the two; then makes an address match narrow any rule (called before
    /// <see cref="MarkStray"/>, whose SYN match the two share).
    /// </summary>
    private static void MarkMetrics(Rule rule)
    {
        var plain = !rule.HasOtherMatch && rule.Daddr is not null && rule.Dports is { Count: 1 } ports && ports[0].Low == ports[0].High
            && rule.SynOnly && !rule.NewOnly && !rule.OpenOnly && !rule.UntrackedOnly && !rule.Drops && rule.LogGroup is null
            && rule.Nfproto is null && rule.RouteSet is null && rule.RedirectPort is null && rule.SkuidNotInSets.Count == 0
            && rule.SkuidRanges is null && rule.SkuidValue is null && rule.Limit is null && rule.MeterSet is null;
        rule.Metrics = !plain ? MetricsRule.None
            : rule.Accepts && !rule.Rejects && rule.SkuidSet == RulesetSpec.MetricsUsersSetName ? MetricsRule.AcceptsScrapers
            : rule.Rejects && !rule.Accepts && rule.SkuidSet is null ? MetricsRule.RefusesOthers
            : MetricsRule.None;
        rule.HasOtherMatch |= rule.Daddr is not null;
    }
}
