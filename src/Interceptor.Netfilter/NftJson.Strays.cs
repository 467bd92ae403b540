using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>The guard's two rules for packets to an SMTP port that no NAT rule ever saw (RulesetRenderer.Guard.cs).</summary>
internal static partial class NftJson
{
    /// <summary>Which of the two a rule is, if it is exactly one of them.</summary>
    internal enum StrayRule
    {
        None,

        /// <summary><c>tcp dport PORTS ct direction reply reject</c>: replies to a connection opened from outside.</summary>
        RefusesReplies,

        /// <summary><c>tcp dport PORTS ct state invalid drop</c>: packets conntrack could not place.</summary>
        DropsInvalid,
    }

    internal sealed partial record Rule
    {
        /// <summary>True when the rule matches <c>ct direction reply</c>.</summary>
        public bool ReplyOnly { get; set; }

        /// <summary>True when the rule matches <c>ct state invalid</c>.</summary>
        public bool InvalidOnly { get; set; }

        /// <summary>A <c>drop</c> verdict.</summary>
        public bool Drops { get; set; }

        /// <summary>Set once the rule is read. Any other rule with one of the three facts above has <see cref="HasOtherMatch"/>.</summary>
        public StrayRule Stray { get; set; }
    }

    private static bool ReadStrayMatch(Rule rule, JsonElement left, JsonElement right)
    {
        if (left.ValueKind == JsonValueKind.Object && left.TryGetProperty("ct", out var ct) && String(ct, "key") == "direction"
            && right.ValueKind == JsonValueKind.String && right.GetString() == "reply")
        {
            rule.ReplyOnly = true;
            return true;
        }

        if (IsCtState(left) && IsOnly(right, "invalid"))
        {
            rule.InvalidOnly = true;
            return true;
        }

        return false;
    }

    /// <summary>
    /// Names the rule when it is one of the two and nothing else; then, as for the pass, makes the three facts narrow any
    /// rule: a refusal or an accept limited to replies or invalid packets covers none of the first packets it is checked for.
    /// </summary>
    private static void MarkStray(Rule rule)
    {
        var plain = !rule.HasOtherMatch && rule.Dports is not null && !rule.Accepts && !rule.NewOnly && !rule.OpenOnly
            && rule.Nfproto is null && rule.SkuidSet is null && rule.RouteSet is null && rule.RedirectPort is null
            && rule.SkuidNotInSets.Count == 0 && rule.SkuidRanges is null && rule.SkuidValue is null && rule.Limit is null
            && rule.MeterSet is null;
        rule.Stray = !plain ? StrayRule.None
            : rule.ReplyOnly && rule.Rejects && !rule.Drops && !rule.InvalidOnly ? StrayRule.RefusesReplies
            : rule.InvalidOnly && rule.Drops && !rule.Rejects && !rule.ReplyOnly ? StrayRule.DropsInvalid
            : StrayRule.None;
        rule.HasOtherMatch |= rule.ReplyOnly || rule.InvalidOnly || rule.Drops;
    }
}
