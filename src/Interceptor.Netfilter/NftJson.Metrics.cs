using System.Net;
using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>The metrics endpoint's five rules (RulesetRenderer.Metrics.cs).</summary>
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

        /// <summary><c>tcp sport P oifname "lo" meta skuid U accept</c>: what the daemon's own sockets send from the endpoint's port.</summary>
        AcceptsServer,

        /// <summary><c>tcp sport P oifname "lo" tcp flags &amp; syn == syn drop</c>: any other local SYN-ACK from it, socketless ones too.</summary>
        DropsOtherSynAcks,

        /// <summary><c>tcp sport P oifname "lo" meta skuid != U drop</c>: what a socket not the daemon's sends from that port, locally.</summary>
        DropsImpostors,
    }

    internal sealed partial record Rule
    {
        /// <summary>The address of an <c>ip daddr A</c> or <c>ip6 daddr A</c> match (one address, nothing else), null without.</summary>
        public IPAddress? Daddr { get; set; }

        /// <summary>The port of a <c>tcp sport P</c> match (one port), null without.</summary>
        public int? Sport { get; set; }

        /// <summary>The uid of a <c>meta skuid != U</c> match, null without.</summary>
        public uint? SkuidNotValue { get; set; }

        /// <summary>The interface of an <c>oifname "X"</c> match, null without.</summary>
        public string? OifName { get; set; }

        /// <summary>True when the rule matches <c>tcp flags &amp; syn == syn</c>: SYN set, whatever the other flags.</summary>
        public bool SynSet { get; set; }

        /// <summary>
        /// Set once the rule is read. Any other rule with an address, source port or skuid-inequality match has
        /// <see cref="HasOtherMatch"/>.
        /// </summary>
        public MetricsRule Metrics { get; set; }
    }

    // {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "127.0.0.1"}}, or saddr, or
    // {"payload": {"protocol": "tcp", "field": "sport"}} with a number; a prefix, range or set on the right is not one of
    // ours and stays another match. A second match of the same field narrows the first.
    private static bool ReadAddressMatch(Rule rule, JsonElement left, JsonElement right)
    {
        var (protocol, field) = left.ValueKind == JsonValueKind.Object && left.TryGetProperty("payload", out var payload)
            ? (String(payload, "protocol"), String(payload, "field"))
            : (null, null);
        if (left.ValueKind == JsonValueKind.Object && left.TryGetProperty("meta", out var meta) && String(meta, "key") == "oifname"
            && right.ValueKind == JsonValueKind.String)
        {
            rule.HasOtherMatch |= rule.OifName is not null;
            rule.OifName = right.GetString();
            return true;
        }

        if (IsSynSet(left, right))
        {
            rule.HasOtherMatch |= rule.SynSet;
            rule.SynSet = true;
            return true;
        }

        if (protocol == "tcp" && field == "sport" && Int(right, out var port))
        {
            rule.HasOtherMatch |= rule.Sport is not null;
            rule.Sport = port;
            return true;
        }

        if (protocol is not ("ip" or "ip6") || field != "daddr"
            || right.ValueKind != JsonValueKind.String || !IPAddress.TryParse(right.GetString(), out var address))
        {
            return false;
        }

        rule.HasOtherMatch |= rule.Daddr is not null;
        rule.Daddr = address;
        return true;
    }

    // nft -j prints "tcp flags & syn == syn" as {"&": [tcp flags, "syn"]} == "syn" (a one-flag mask may also be a list).
    private static bool IsSynSet(JsonElement left, JsonElement right)
    {
        if (left.ValueKind != JsonValueKind.Object || !left.TryGetProperty("&", out var and) || and.ValueKind != JsonValueKind.Array
            || and.GetArrayLength() != 2 || !IsOnly(right, "syn") || !IsOnly(and[1], "syn"))
        {
            return false;
        }

        return and[0].ValueKind == JsonValueKind.Object && and[0].TryGetProperty("payload", out var payload)
            && String(payload, "protocol") == "tcp" && String(payload, "field") == "flags";
    }

    /// <summary>
    /// Names the rule when it is exactly one of the five; then makes an address, source port or skuid-inequality match
    /// narrow any rule (called before <see cref="MarkStray"/>, whose SYN match two of them share).
    /// </summary>
    private static void MarkMetrics(Rule rule)
    {
        var common = !rule.HasOtherMatch && !rule.NewOnly && !rule.OpenOnly && !rule.UntrackedOnly && rule.LogGroup is null
            && rule.Nfproto is null && rule.RouteSet is null && rule.RedirectPort is null && rule.SkuidNotInSets.Count == 0
            && rule.SkuidRanges is null && rule.Limit is null && rule.MeterSet is null;
        var syn = common && rule.SkuidValue is null && rule.OifName is null && rule.Daddr is not null && rule.Sport is null && rule.SkuidNotValue is null
            && rule.Dports is { Count: 1 } ports && ports[0].Low == ports[0].High && rule.SynOnly && !rule.SynSet && !rule.Drops;
        var answer = common && rule.OifName == "lo" && rule.Daddr is null && rule.Sport is not null && rule.Dports is null
            && rule.SkuidSet is null && !rule.SynOnly && !rule.Rejects && rule.Accepts != rule.Drops;
        rule.Metrics = answer && rule.Accepts && rule.SkuidValue is not null && rule.SkuidNotValue is null && !rule.SynSet ? MetricsRule.AcceptsServer
            : answer && rule.Drops && rule.SynSet && rule.SkuidValue is null && rule.SkuidNotValue is null ? MetricsRule.DropsOtherSynAcks
            : answer && rule.Drops && rule.SkuidNotValue is not null && rule.SkuidValue is null && !rule.SynSet ? MetricsRule.DropsImpostors
            : !syn ? MetricsRule.None
            : rule.Accepts && !rule.Rejects && rule.SkuidSet == RulesetSpec.MetricsUsersSetName ? MetricsRule.AcceptsScrapers
            : rule.Rejects && !rule.Accepts && rule.SkuidSet is null ? MetricsRule.RefusesOthers
            : MetricsRule.None;
        rule.HasOtherMatch |= rule.Daddr is not null || rule.Sport is not null || rule.SkuidNotValue is not null || rule.SynSet
            || rule.OifName is not null;
    }
}
