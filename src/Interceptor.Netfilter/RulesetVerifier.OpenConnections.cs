namespace Interceptor.Netfilter;

/// <summary>The rule that opens each of our filter chains (see RulesetRenderer.OpenConnectionsPass).</summary>
public static partial class RulesetVerifier
{
    /// <summary>
    /// Without the rule no verdict would change, but every packet of every connection the host has open would be matched
    /// against each rule of the chain; it is part of what we install, so its absence or place is a difference. A rule
    /// that accepts by connection state and may match a first packet (new, untracked, invalid) is not this rule: it is left
    /// unmarked and reported as unexpected.
    /// </summary>
    private static void CheckOpenConnectionsPass(List<NftJson.Rule> rules, string chain, bool[] isOurs, List<string> differences)
    {
        var pass = rules.FindIndex(r => r.IsOpenConnectionsPass);
        if (pass < 0)
        {
            differences.Add($"chain {chain} does not start with ct state established,related accept: every packet of the host's open connections goes through all its rules");
            return;
        }

        isOurs[pass] = true;

        // Only the guard's exempt users (in every state), its refusal of SYNs of known connections and the metrics
        // endpoint's two rules may (and must) come first: the pass would let those SYNs out.
        if (rules.Take(pass).Any(r => r.Stray != NftJson.StrayRule.RefusesKnownSyn && r.Metrics == NftJson.MetricsRule.None
            && !(r.Accepts && r.SkuidSet == RulesetSpec.ExemptSetName && r.RouteSet is null && !r.NewOnly && !r.HasOtherMatch)))
        {
            differences.Add($"the rule for open connections in chain {chain} is not its first: packets of open connections go through the rules before it");
        }
    }
}
