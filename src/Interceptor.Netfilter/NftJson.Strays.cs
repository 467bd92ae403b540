using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>The guard's two rules for a customer's packets that no NAT rule sees (RulesetRenderer.Guard.cs).</summary>
internal static partial class NftJson
{
    /// <summary>Which of the two a rule is, if it is exactly one of them.</summary>
    internal enum StrayRule
    {
        None,

        /// <summary>
        /// <c>tcp dport PORTS tcp flags syn / syn,ack ct state established,related reject</c>, after the exempt users' accept: a
        /// SYN that conntrack files under a connection it already tracks.
        /// </summary>
        RefusesKnownSyn,

        /// <summary>
        /// <c>tcp dport PORTS meta skuid != @exempt_uids ct state invalid,untracked drop</c>: packets conntrack could not
        /// place, or was told not to track (no NAT for either).
        /// </summary>
        DropsUntracked,
    }

    internal sealed partial record Rule
    {
        /// <summary>True when the rule matches <c>tcp flags syn / syn,ack</c>: SYN set, ACK clear (a connection's first packet).</summary>
        public bool SynOnly { get; set; }

        /// <summary>True when the rule matches <c>ct state invalid,untracked</c> (both, nothing else).</summary>
        public bool UntrackedOnly { get; set; }

        /// <summary>How many of the open states (established, related) a <see cref="OpenOnly"/> match names.</summary>
        public int OpenStateCount { get; set; }

        /// <summary>A <c>drop</c> verdict.</summary>
        public bool Drops { get; set; }

        /// <summary>The group of a <c>log group N</c> statement, null without one (a log without a group: -1).</summary>
        public int? LogGroup { get; set; }

        /// <summary>The prefix of that statement, null without one.</summary>
        public string? LogPrefix { get; set; }

        /// <summary>Set once the rule is read. Any other rule with one of the three facts above has <see cref="HasOtherMatch"/>.</summary>
        public StrayRule Stray { get; set; }
    }

    // {"log": {"prefix": "...", "group": N}}: only the stray rules log, to the daemon's group (syslog logging has no group).
    // One log statement with those two keys alone: a second one (to the kernel log, which customers may read) or another
    // key (a snaplen that cuts the addresses off) makes it not our rule. Matches after it are refused in ParseRule.
    private static void ReadLog(Rule rule, JsonElement log)
    {
        rule.HasOtherMatch |= rule.LogGroup is not null
            || log.ValueKind != JsonValueKind.Object || log.EnumerateObject().Any(p => p.Name is not ("prefix" or "group"));
        rule.LogGroup = log.ValueKind == JsonValueKind.Object && log.TryGetProperty("group", out var group) && Int(group, out var number) ? number : -1;
        rule.LogPrefix = String(log, "prefix");
    }

    private static bool ReadStrayMatch(Rule rule, JsonElement left, JsonElement right)
    {
        if (IsSynWithoutAck(left, right))
        {
            rule.SynOnly = true;
            return true;
        }

        if (IsCtState(left) && right.ValueKind == JsonValueKind.Array && right.GetArrayLength() == 2
            && right.EnumerateArray().Select(s => s.ValueKind == JsonValueKind.String ? s.GetString() : null).Order().SequenceEqual(["invalid", "untracked"]))
        {
            rule.UntrackedOnly = true;
            return true;
        }

        return false;
    }

    // nft -j prints "tcp flags syn / syn,ack" as {"&": [tcp flags, ["syn", "ack"]]} == "syn".
    private static bool IsSynWithoutAck(JsonElement left, JsonElement right)
    {
        if (left.ValueKind != JsonValueKind.Object || !left.TryGetProperty("&", out var and) || and.ValueKind != JsonValueKind.Array
            || and.GetArrayLength() != 2 || !IsOnly(right, "syn"))
        {
            return false;
        }

        var isFlags = and[0].ValueKind == JsonValueKind.Object && and[0].TryGetProperty("payload", out var payload)
            && String(payload, "protocol") == "tcp" && String(payload, "field") == "flags";
        List<string?> mask = and[1].ValueKind == JsonValueKind.Array ? [.. and[1].EnumerateArray().Select(f => f.ValueKind == JsonValueKind.String ? f.GetString() : null)] : [];
        return isFlags && mask.Count == 2 && mask.Contains("syn") && mask.Contains("ack");
    }

    /// <summary>
    /// Names the rule when it is one of the two and nothing else; then makes the three facts narrow any rule, as the open
    /// states do: a refusal or accept limited to SYNs of known connections or to invalid packets covers no new connection.
    /// Called before the open states are counted as narrowing (the first of the two matches them by design).
    /// </summary>
    private static void MarkStray(Rule rule)
    {
        var plain = !rule.HasOtherMatch && rule.Dports is not null && !rule.Accepts && !rule.NewOnly
            && rule.Nfproto is null && rule.SkuidSet is null && rule.RouteSet is null && rule.RedirectPort is null
            && rule.SkuidRanges is null && rule.SkuidValue is null && rule.Limit is null && rule.MeterSet is null;

        // The SYN refusal has no user match: exempt users are accepted before it, and a SYN without an owning socket
        // (which no skuid match sees) must be refused too (third attack review). Both open states: with one only, the SYN
        // the other names would go on to the pass (second attack review). The drop leaves socketless packets alone (the
        // kernel's resets and TIME_WAIT acknowledgements of exempt users' connections).
        var exemptSpared = rule.SkuidNotInSets.Count == 1 && rule.SkuidNotInSets[0] == RulesetSpec.ExemptSetName;
        rule.Stray = !plain ? StrayRule.None
            : rule.SynOnly && rule.OpenOnly && rule.OpenStateCount == 2 && !rule.UntrackedOnly && rule.Rejects && !rule.Drops
                && rule.SkuidNotInSets.Count == 0 ? StrayRule.RefusesKnownSyn
            : rule.UntrackedOnly && !rule.SynOnly && !rule.OpenOnly && rule.Drops && !rule.Rejects && exemptSpared ? StrayRule.DropsUntracked
            : StrayRule.None;
        rule.HasOtherMatch |= rule.SynOnly || rule.UntrackedOnly || rule.Drops || (rule.LogGroup is not null && rule.Stray == StrayRule.None);
    }
}
