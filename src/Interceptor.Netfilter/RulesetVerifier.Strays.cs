namespace Interceptor.Netfilter;

/// <summary>The guard's rules for a customer's packets that no NAT rule sees (see the remarks of RulesetRenderer.Guard.cs).</summary>
public static partial class RulesetVerifier
{
    private static void CheckStrayRules(List<NftJson.Rule> rules, string chain, RulesetSpec spec, List<int> guarded, bool[] isOurs, List<string> differences)
    {
        var syn = FindStrayRule(rules, NftJson.StrayRule.RefusesKnownSyn, chain, guarded, isOurs, differences,
            $"no rule in chain {chain} refuses SYNs to port(s) {Join(guarded)} that conntrack files under a connection it has (tcp flags syn / syn,ack ct state established,related): a customer who reuses the port of an exempt user's ended connection, or answers a packet forged from a mail server's port 25, connects to it directly",
            "refusing SYNs of known connections");
        var pass = rules.FindIndex(r => r.IsOpenConnectionsPass);
        if (syn >= 0 && pass >= 0 && syn > pass)
        {
            differences.Add($"the rule refusing SYNs of known connections in chain {chain} comes after the rule for open connections, which lets those SYNs out first");
        }

        var drop = FindStrayRule(rules, NftJson.StrayRule.DropsUntracked, chain, guarded, isOurs, differences,
            $"no rule in chain {chain} drops customers' packets to port(s) {Join(guarded)} that conntrack marks invalid or does not track: no NAT applies to them, so they leave directly",
            "dropping customers' untracked and invalid packets");
        CheckStrayLog(syn < 0 ? null : rules[syn], chain, spec.StrayLogGroup, RulesetSpec.StraySynLogPrefix, "refusing SYNs of known connections", differences);
        CheckStrayLog(drop < 0 ? null : rules[drop], chain, spec.StrayLogGroup, RulesetSpec.StrayPacketLogPrefix, "dropping customers' untracked and invalid packets", differences);
    }

    // Logged to the daemon's group with our prefix, or not at all when the group is 0: another group would hand the packets
    // (and their users) to whoever listens there, and no group leaves the daemon unable to name the user.
    private static void CheckStrayLog(NftJson.Rule? rule, string chain, ushort group, string prefix, string what, List<string> differences)
    {
        if (rule is null || (group == 0 ? rule.LogGroup is null : rule.LogGroup == group && rule.LogPrefix == prefix))
        {
            return;
        }

        differences.Add(group == 0
            ? $"the rule {what} in chain {chain} logs {Destination(rule)}, which Interception.StrayLogGroup 0 does not ask for"
            : rule.LogGroup is null
                ? $"the rule {what} in chain {chain} does not log to NFLOG group {group}: the daemon cannot name the users it refuses"
                : $"the rule {what} in chain {chain} logs {Destination(rule)} with prefix \"{rule.LogPrefix}\", not to NFLOG group {group} with prefix \"{prefix}\"");
    }

    private static string Destination(NftJson.Rule rule) => rule.LogGroup is -1 ? "to the kernel log" : $"to NFLOG group {rule.LogGroup}";

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
