using System.Globalization;
using System.Text;
using Interceptor.Core.Attribution;

namespace Interceptor.Netfilter;

public static partial class RulesetRenderer
{
    // A uid's bucket is forgotten this long after its last SYN. Longer than any burst takes to refill (50 at 20/s: 2.5 s),
    // so forgetting it changes nothing; short enough that the set stays small on a host with many users.
    private const int MeterTimeoutSeconds = 60;

    // Room for every uid that can connect within one timeout; when full, a new uid's SYN passes unmetered (nft cannot
    // add it: the update fails and the rule does not match), which is why the size is far above the users a host has and
    // why sub-UIDs, of which one customer can hold 65,536, never enter it (set ratelimit_subuids).
    private const int MeterSize = 65535;

    // The sets and named counters of the connection rate limit (issue 19): nothing at all when it is off, so such a table
    // is exactly what it was before the limit existed.
    private static void RenderRateLimitObjects(StringBuilder text, RulesetSpec spec)
    {
        if (!spec.LimitsConnectionRate)
        {
            return;
        }

        Set(text, RulesetSpec.RateLimitUsersSetName, "uid",
            "Users with their own Limits.Users.NAME.ConnectionsPerSecond: their own rule, not the default meter",
            spec.UserConnectionRates.Select(r => Number(r.Uid)));
        if (spec.DefaultConnectionRate is not null)
        {
            Line(text, 1, $"set {RulesetSpec.RateLimitMeterSetName} {{");
            Line(text, 2, "type uid");
            Line(text, 2, $"size {Number(MeterSize)}");
            Line(text, 2, "flags dynamic,timeout");
            Line(text, 2, $"timeout {Number(MeterTimeoutSeconds)}s");
            Line(text, 2, Comment("Limits.Default.ConnectionsPerSecond: one token bucket per uid, filled by its SYNs"));
            Line(text, 1, "}");
            Line(text, 0, string.Empty);
            NamedCounter(text, RulesetSpec.RateLimitCounterName,
                "Connections refused by the kernel over Limits.Default.ConnectionsPerSecond (any user)");
        }

        foreach (var own in spec.UserConnectionRates.Where(r => r.Rate is not null))
        {
            NamedCounter(text, own.CounterName,
                $"Connections of uid {Number(own.Uid)} refused by the kernel over its Limits.Users.NAME.ConnectionsPerSecond");
        }

        var subordinates = spec.SubordinateConnectionRates;
        if (subordinates.Count > 0)
        {
            Set(text, RulesetSpec.RateLimitSubordinateSetName, "uid",
                "Sub-UIDs (/etc/subuid): never in the meter; each owner's ranges share one bucket at the owner's rate",
                UidRange.Merge(subordinates.SelectMany(o => o.Ranges)).Select(r => r.ToString()), flags: "interval");
        }

        foreach (var owner in subordinates.Where(o => o.Rate is not null))
        {
            NamedCounter(text, owner.CounterName, $"Connections of the sub-UIDs of uid {Number(owner.Owner)} refused by the kernel over its rate");
        }
    }

    /// <summary>
    /// The intercepted ports and the listener's. A connection straight to the listener (not redirected) costs the daemon an
    /// accept, an attribution and a 421 like a redirected one, so it spends the same bucket; without it a customer could
    /// loop such connects at any rate. A redirected connection is counted once: this chain runs before the NAT chain, where
    /// its port is still the intercepted one.
    /// </summary>
    internal static string RateLimitedPorts(RulesetSpec spec) => PortExpression([.. spec.Ports.Append(spec.ListenPort).Order()]);

    // After the suspensions (a suspended user is refused anyway) and after the exempt users (never limited): a SYN over
    // its uid's rate gets a TCP reset, so the client fails at once instead of retrying into the same full bucket.
    private static void RenderRateLimitRules(StringBuilder text, RulesetSpec spec, string ports)
    {
        foreach (var own in spec.UserConnectionRates.Where(r => r.Rate is not null))
        {
            // A plain limit: the rule matches one uid, so its single bucket is that user's.
            Line(text, 2, $"tcp dport {ports} meta skuid {Number(own.Uid)} ct state new {own.Rate!.LimitOver} "
                + $"counter name \"{own.CounterName}\" reject with tcp reset "
                + Comment($"Uid {Number(own.Uid)} over its own rate ({own.Rate}): refused by the kernel"));
        }

        // A plain limit over the owner's ranges: one bucket for all its sub-UIDs, so a site that becomes 65,536 uids is
        // still one source, and none of them ever needs a place in the meter.
        var subordinates = spec.SubordinateConnectionRates;
        foreach (var owner in subordinates.Where(o => o.Rate is not null))
        {
            Line(text, 2, $"tcp dport {ports} meta skuid {owner.SkuidExpression} ct state new {owner.Rate!.LimitOver} "
                + $"counter name \"{owner.CounterName}\" reject with tcp reset "
                + Comment($"Sub-UIDs of uid {Number(owner.Owner)} over its rate ({owner.Rate}), one bucket: refused by the kernel"));
        }

        var notSubordinate = subordinates.Count > 0 ? $"meta skuid != @{RulesetSpec.RateLimitSubordinateSetName} " : string.Empty;
        if (spec.DefaultConnectionRate is { } rate)
        {
            Line(text, 2, $"tcp dport {ports} meta skuid != @{RulesetSpec.RateLimitUsersSetName} {notSubordinate}ct state new "
                + $"update @{RulesetSpec.RateLimitMeterSetName} {{ meta skuid {rate.LimitOver} }} "
                + $"counter name \"{RulesetSpec.RateLimitCounterName}\" reject with tcp reset "
                + Comment(string.Create(CultureInfo.InvariantCulture, $"A uid over Limits.Default.ConnectionsPerSecond ({rate}): refused by the kernel")));
        }
    }

    private static void NamedCounter(StringBuilder text, string name, string comment)
    {
        Line(text, 1, $"counter {name} {{");
        Line(text, 2, Comment(comment));
        Line(text, 1, "}");
        Line(text, 0, string.Empty);
    }
}
