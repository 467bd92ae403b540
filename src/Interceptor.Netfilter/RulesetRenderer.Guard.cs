using System.Globalization;
using System.Text;

namespace Interceptor.Netfilter;

/// <summary>
/// The guard table. Our main table is one `nft delete table` or `nft flush ruleset`-style mistake away from
/// letting every customer connect to port 25 directly until the watchdog restores it. The guard closes that gap
/// from outside the main table: a filter chain at priority 0 runs after the NAT chain (-100), where a redirected
/// connection already aims at the listener's port, so anything still aimed at an intercepted (or blocked) port
/// was not redirected. Exempt users and allowed routes pass, as in the main table; everything else is reset.
/// While the main table is intact the guard never refuses a connection the main table redirects or lets through.
/// </summary>
/// <remarks>
/// A NAT chain sees the first packet of a connection conntrack does not know yet, nothing else, so a customer's SYN
/// that conntrack files under an entry it already has is never redirected, whatever the main table says. Two ways to
/// get one, each shown by a test against the rules without these two: <b>reuse</b> a port whose connection to the mail
/// server an exempt user (the daemon, the MTA) had until the server reset it or it died without a FIN (the entry lives
/// on, 10 s or days, and a SYN in its original direction is "established"); or <b>answer</b> a SYN forged from the mail
/// server's port 25 to a port the customer listens on: the customer's SYN back is the entry's reply ("established"
/// while the forged SYN is unanswered, "invalid" once the listener has answered it). The guard accepts exempt users'
/// packets first, in every state (a forger's stale entries must not stall the daemon's own connections); then, before
/// its pass, it refuses every other SYN that is established or related, one without an owning socket too (a kernel
/// socket a user drives, such as SMC's, has none; third attack review); last, it drops a customer's invalid or untracked
/// packets (a notrack rule elsewhere would leave them without NAT too). Of the customers' established packets only SYNs
/// are refused: their sites' replies to a visitor whose source port happens to be a guarded port (2525 from a carrier's
/// NAT) go out as before. tests/HOSTILE.md 12.12.
/// </remarks>
public static partial class RulesetRenderer
{
    // The "filter" priority: after the NAT chain (-100) has rewritten redirected connections.
    private const int GuardPriority = 0;

    private static void RenderGuard(StringBuilder text, RulesetSpec spec)
    {
        var guard = spec.GuardTable;
        var guarded = PortExpression([.. spec.Ports.Concat(spec.BlockedPorts).Order()]);

        Line(text, 0, string.Empty);
        Line(text, 0, $"table inet {guard} {{}}");
        Line(text, 0, $"delete table inet {guard}");
        Line(text, 0, string.Empty);
        Line(text, 0, $"table inet {guard} {{");
        Line(text, 1, Comment("Managed by smtp-interceptor: refuses SMTP connections that its main table did not redirect"));
        Line(text, 0, string.Empty);

        Set(text, RulesetSpec.ExemptSetName, "uid",
            $"The same users as in table {spec.Table}: never refused",
            spec.ExemptUids.Select(u => u.ToString(CultureInfo.InvariantCulture)));
        Set(text, RulesetSpec.AllowedRoutesV4SetName, "uid . ipv4_addr . inet_service",
            $"The same IPv4 routes as in table {spec.Table}: never refused",
            spec.AllowedRoutes.Where(r => !r.IsIPv6).Select(r => r.ToString()));
        Set(text, RulesetSpec.AllowedRoutesV6SetName, "uid . ipv6_addr . inet_service",
            $"The same IPv6 routes as in table {spec.Table}: never refused",
            spec.AllowedRoutes.Where(r => r.IsIPv6).Select(r => r.ToString()));

        Line(text, 1, $"chain {RulesetSpec.GuardChainName} {{");
        Line(text, 2, $"type filter hook output priority {GuardPriority.ToString(CultureInfo.InvariantCulture)}; policy accept;");
        Line(text, 2, Comment($"After {RulesetSpec.NatChainName}: a redirected connection aims at port {spec.ListenPort.ToString(CultureInfo.InvariantCulture)} by now"));

        // Exempt users first, in every state: nothing below may refuse them (a forger's stale entries must not stall the
        // daemon's own connections). Then, before the pass, which would let them out ("established" to conntrack), every
        // other SYN that conntrack files under an entry it has, a socketless one too (a kernel socket a user drives).
        Line(text, 2, $"tcp dport {guarded} meta skuid @{RulesetSpec.ExemptSetName} counter accept "
            + Comment($"Exempt users (set {RulesetSpec.ExemptSetName}) connect directly"));
        Line(text, 2, $"tcp dport {guarded} tcp flags syn / syn,ack ct state established,related counter {StrayLog(spec, RulesetSpec.StraySynLogPrefix)}reject with tcp reset "
            + Comment("A SYN filed under a connection conntrack already has (someone's ended one, a reply): no NAT rule sees it"));
        OpenConnectionsPass(text);
        Line(text, 2, $"meta skuid . ip daddr . tcp dport @{RulesetSpec.AllowedRoutesV4SetName} ct state new counter accept "
            + Comment($"Allowed routes (set {RulesetSpec.AllowedRoutesV4SetName}) connect directly"));
        Line(text, 2, $"meta skuid . ip6 daddr . tcp dport @{RulesetSpec.AllowedRoutesV6SetName} ct state new counter accept "
            + Comment($"Allowed routes (set {RulesetSpec.AllowedRoutesV6SetName}) connect directly"));
        Line(text, 2, $"tcp dport {guarded} ct state new counter reject with tcp reset "
            + Comment("Not redirected, so the main table is missing or broken: refused instead of let out directly"));
        Line(text, 2, $"tcp dport {guarded} meta skuid != @{RulesetSpec.ExemptSetName} ct state invalid,untracked counter {StrayLog(spec, RulesetSpec.StrayPacketLogPrefix)}drop "
            + Comment("A customer's packets conntrack cannot place or does not track (no NAT for them): dropped instead of let out directly"));
        Line(text, 1, "}");
        Line(text, 0, "}");
    }

    // Each packet to the daemon's NFLOG group, with its owning uid (RulesetSpec.StrayLogGroup); nothing when that is 0.
    private static string StrayLog(RulesetSpec spec, string prefix) =>
        spec.StrayLogGroup == 0 ? string.Empty : $"log prefix \"{prefix}\" group {spec.StrayLogGroup.ToString(CultureInfo.InvariantCulture)} ";
}
