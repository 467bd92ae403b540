namespace Interceptor.Netfilter;

/// <summary>The guard's rules for a customer's packets that no NAT rule sees (see the remarks of RulesetRenderer.Guard.cs).</summary>
public static partial class RulesetVerifier
{
    private static void CheckStrayRules(List<NftJson.Rule> rules, string chain, List<int> guarded, bool[] isOurs, List<string> differences)
    {
        var syn = FindStrayRule(rules, NftJson.StrayRule.RefusesKnownSyn, chain, guarded, isOurs, differences,
            $"no rule in chain {chain} refuses SYNs to port(s) {Join(guarded)} that conntrack files under a connection it has (tcp flags syn / syn,ack ct state established,related): a customer who reuses the port of an exempt user's ended connection, or answers a packet forged from a mail server's port 25, connects to it directly",
            "refusing SYNs of known connections");
        var pass = rules.FindIndex(r => r.IsOpenConnectionsPass);
        if (syn >= 0 && pass >= 0 && syn > pass)
        {
            differences.Add($"the rule refusing SYNs of known connections in chain {chain} comes after the rule for open connections, which lets those SYNs out first");
        }

        FindStrayRule(rules, NftJson.StrayRule.DropsUntracked, chain, guarded, isOurs, differences,
            $"no rule in chain {chain} drops customers' packets to port(s) {Join(guarded)} that conntrack marks invalid or does not track: no NAT applies to them, so they leave directly",
            "dropping customers' untracked and invalid packets");
    }

    /// <summary>The rule of that kind, marked ours and checked for every guarded port; -1, reported as missing, without one.</summary>
    private static int FindStrayRule(
        List<NftJson.Rule> rules, NftJson.StrayRule kind, string chain, List<int> guarded, bool[] isOurs, List<string> differences, string missing, string what)
    {
        var index = rules.FindIndex(r => r.Stray == kind);
        if (index < 0)
        {
            differences.Add(missing);
            return -1;
        }

        isOurs[index] = true;

        // Covers() is false for every port of a rule with a match we do not understand; these two have theirs by design.
        var uncovered = guarded.Where(p => !rules[index].Dports!.Any(r => r.Low <= p && p <= r.High)).ToList();
        if (uncovered.Count > 0)
        {
            differences.Add($"the rule {what} in chain {chain} does not cover port(s) {Join(uncovered)}");
        }

        return index;
    }
}
