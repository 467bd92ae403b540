namespace Interceptor.Netfilter;

/// <summary>The guard's rules for a customer's packets that no NAT rule sees (see the remarks of RulesetRenderer.Guard.cs).</summary>
public static partial class RulesetVerifier
{
    private static void CheckStrayRules(List<NftJson.Rule> rules, string chain, List<int> guarded, bool[] isOurs, List<string> differences)
    {
        var syn = rules.FindIndex(r => r.Stray == NftJson.StrayRule.RefusesKnownSyn);
        if (syn < 0)
        {
            differences.Add($"no rule in chain {chain} refuses customers' SYNs to port(s) {Join(guarded)} that conntrack files under a connection it has (tcp flags syn / syn,ack ct state established,related): a customer who reuses the port of an exempt user's ended connection, or answers a packet forged from a mail server's port 25, connects to it directly");
        }
        else
        {
            isOurs[syn] = true;
            CheckCovers(rules[syn], "refusing customers' SYNs of known connections", chain, guarded, differences);
            var pass = rules.FindIndex(r => r.IsOpenConnectionsPass);
            if (pass >= 0 && syn > pass)
            {
                differences.Add($"the rule refusing customers' SYNs of known connections in chain {chain} comes after the rule for open connections, which lets those SYNs out first");
            }
        }

        var invalid = rules.FindIndex(r => r.Stray == NftJson.StrayRule.DropsUntracked);
        if (invalid < 0)
        {
            differences.Add($"no rule in chain {chain} drops customers' packets to port(s) {Join(guarded)} that conntrack marks invalid or does not track: no NAT applies to them, so they leave directly");
        }
        else
        {
            isOurs[invalid] = true;
            CheckCovers(rules[invalid], "dropping customers' untracked and invalid packets", chain, guarded, differences);
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
