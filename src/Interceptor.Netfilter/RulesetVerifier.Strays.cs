namespace Interceptor.Netfilter;

/// <summary>The guard's rules for packets no NAT rule sees (see the remarks of RulesetRenderer.Guard.cs).</summary>
public static partial class RulesetVerifier
{
    private static void CheckStrayRules(List<NftJson.Rule> rules, string chain, List<int> guarded, bool[] isOurs, List<string> differences)
    {
        var replies = rules.FindIndex(r => r.Stray == NftJson.StrayRule.RefusesReplies);
        if (replies < 0)
        {
            differences.Add($"no rule in chain {chain} refuses replies to port(s) {Join(guarded)} (ct direction reply): a customer who listens on a port and gets one packet from a mail server's port 25 connects back to it directly");
        }
        else
        {
            isOurs[replies] = true;
            CheckCovers(rules[replies], "refusing replies", chain, guarded, differences);
            var pass = rules.FindIndex(r => r.IsOpenConnectionsPass);
            if (pass >= 0 && replies > pass)
            {
                differences.Add($"the rule refusing replies in chain {chain} comes after the rule for open connections, which lets those replies out first");
            }
        }

        var invalid = rules.FindIndex(r => r.Stray == NftJson.StrayRule.DropsInvalid);
        if (invalid < 0)
        {
            differences.Add($"no rule in chain {chain} drops packets to port(s) {Join(guarded)} that conntrack marks invalid: no NAT rule sees them, so they leave directly");
        }
        else
        {
            isOurs[invalid] = true;
            CheckCovers(rules[invalid], "dropping invalid packets", chain, guarded, differences);
        }
    }

    private static void CheckCovers(NftJson.Rule rule, string what, string chain, List<int> guarded, List<string> differences)
    {
        // Covers() is false for every port of a rule with a match we do not understand; these two have theirs by design.
        var uncovered = guarded.Where(p => !rule.Dports!.Any(r => r.Low <= p && p <= r.High)).ToList();
        if (uncovered.Count > 0)
        {
            differences.Add($"the rule {what} in chain {chain} does not cover port(s) {Join(uncovered)}");
        }
    }
}
