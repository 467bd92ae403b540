using System.Text.Json;
using Interceptor.Core.Attribution;

namespace Interceptor.Netfilter;

public static partial class RulesetVerifier
{
    // The connection rate limit (issue 19): the own-users set, the meter, the named counters and one rule per rate, each
    // compared by meaning. Marks the rules it recognises in isOurs; a rule that limits at another rate is reported as
    // changed, not as unexpected, so the admin reads what was altered.
    private static void CheckRateLimits(
        IReadOnlyList<NftJson.TableObject> objects, List<NftJson.Rule> rules, RulesetSpec spec, bool[] isOurs, int exempt, List<string> differences)
    {
        if (!spec.LimitsConnectionRate)
        {
            return;
        }

        CheckUidSet(objects, RulesetSpec.RateLimitUsersSetName, [.. spec.UserConnectionRates.Select(r => r.Uid)],
            "these users' connections are also counted by the default meter", "these users escape the default connection rate", differences);

        var subordinates = spec.SubordinateConnectionRates;
        if (subordinates.Count > 0)
        {
            CheckUidRangeSet(objects, RulesetSpec.RateLimitSubordinateSetName, [.. subordinates.SelectMany(o => o.Ranges)],
                "the default meter does not leave out exactly the subordinate uids of /etc/subuid", differences);
        }

        // Each owner's sub-UIDs: found by their counter or by the uids they match, so a changed range reads as changed.
        foreach (var owner in subordinates.Where(o => o.Rate is not null))
        {
            CheckCounter(objects, owner.CounterName, differences);
            var index = rules.FindIndex(r => r.Rejects && r.Limit is not null && r.MeterSet is null && r.CounterName == owner.CounterName);
            if (index < 0)
            {
                index = rules.FindIndex(r => r.Rejects && r.Limit is not null && r.MeterSet is null && MatchedUids(r) is { } matched
                    && matched.SequenceEqual(owner.Ranges));
            }

            CheckRateRule(rules, index, owner.Rate!, owner.CounterName, spec, isOurs, exempt,
                $"the sub-UIDs of uid {owner.Owner} ({owner.Rate})", differences, owner.Ranges);
        }

        foreach (var own in spec.UserConnectionRates.Where(r => r.Rate is not null))
        {
            CheckCounter(objects, own.CounterName, differences);
            var index = rules.FindIndex(r => r.Rejects && r.SkuidValue == own.Uid && r.Limit is not null && r.MeterSet is null);
            CheckRateRule(rules, index, own.Rate!, own.CounterName, spec, isOurs, exempt,
                $"uid {own.Uid}'s own connection rate ({own.Rate})", differences);
        }

        if (spec.DefaultConnectionRate is { } rate)
        {
            var meter = FindSet(objects, RulesetSpec.RateLimitMeterSetName);
            if (meter is null)
            {
                differences.Add($"set {RulesetSpec.RateLimitMeterSetName} is missing");
            }
            else
            {
                Expect(differences, $"set {RulesetSpec.RateLimitMeterSetName}: type", NftJson.String(meter.Body, "type"), "uid");
            }

            CheckCounter(objects, RulesetSpec.RateLimitCounterName, differences);
            var index = rules.FindIndex(r => r.Rejects && r.MeterSet == RulesetSpec.RateLimitMeterSetName);
            if (index >= 0)
            {
                CheckMeterExclusions(rules[index], subordinates.Count > 0, differences);
            }

            CheckRateRule(rules, index, rate, RulesetSpec.RateLimitCounterName, spec, isOurs, exempt,
                $"the default connection rate ({rate}, set {RulesetSpec.RateLimitMeterSetName})", differences);
        }
    }

    private static void CheckRateRule(
        List<NftJson.Rule> rules, int index, ConnectionRate rate, string counter, RulesetSpec spec, bool[] isOurs, int exempt, string what,
        List<string> differences, IReadOnlyList<UidRange>? ranges = null)
    {
        const string chain = RulesetSpec.FilterChainName;
        if (index < 0)
        {
            differences.Add($"no rule in chain {chain} enforces {what}: the kernel does not limit these connections");
            return;
        }

        isOurs[index] = true;
        var rule = rules[index];
        var limit = rule.Limit!;
        if (!limit.Over || limit.Per != "second" || limit.Rate != rate.PerSecond || limit.Burst != rate.Burst)
        {
            var actual = $"{(limit.Over ? "over " : "under ")}{limit.Rate}/{limit.Per ?? "?"} burst {limit.Burst}";
            differences.Add($"the rule in chain {chain} for {what} limits {actual}, expected over {rate.PerSecond}/second burst {rate.Burst}");
        }

        if (!rule.NewOnly)
        {
            differences.Add($"the rule in chain {chain} for {what} does not match ct state new only: it would count every packet");
        }

        if (rule.CounterName != counter)
        {
            differences.Add($"the rule in chain {chain} for {what} counts in {rule.CounterName ?? "no named counter"}, expected counter {counter}");
        }

        if (ranges is not null && (MatchedUids(rule) is not { } matched || !matched.SequenceEqual(ranges)))
        {
            var actual = MatchedUids(rule) is { } uids ? string.Join(", ", uids) : "no uid range";
            differences.Add($"the rule in chain {chain} for {what} matches uids {actual}, expected {string.Join(", ", ranges)}");
        }

        if (rule.HasOtherMatch || rule.SkuidSet is not null || (ranges is null && rule.SkuidRanges is not null))
        {
            differences.Add($"the rule in chain {chain} for {what} has a match or statement smtp-interceptor does not write: it {rule.Describe()}");
        }

        // The listener's port too: a rule without it lets direct connections to the listener through at any rate.
        var uncovered = spec.Ports.Append(spec.ListenPort).Where(p => !rule.Covers(p)).ToList();
        if (uncovered.Count > 0 && !rule.HasOtherMatch)
        {
            differences.Add($"the rule in chain {chain} for {what} does not cover port(s) {Join(uncovered)}");
        }

        if (exempt >= 0 && index < exempt)
        {
            differences.Add($"the rule in chain {chain} for {what} comes before the rule for set {RulesetSpec.ExemptSetName}: exempt users could be refused");
        }
    }

    // The meter rule must leave out the users with their own rate and, when there are any, every sub-UID: a sub-UID in
    // the meter could help fill it, and a full meter lets a new uid through unmetered. A set we do not write is reported.
    private static void CheckMeterExclusions(NftJson.Rule rule, bool hasSubordinates, List<string> differences)
    {
        const string chain = RulesetSpec.FilterChainName;
        var meter = RulesetSpec.RateLimitMeterSetName;
        if (!rule.SkuidNotInSets.Contains(RulesetSpec.RateLimitUsersSetName))
        {
            differences.Add($"the rule of set {meter} in chain {chain} does not leave out the users in set "
                + $"{RulesetSpec.RateLimitUsersSetName}: users with their own rate are limited by the default too");
        }

        if (hasSubordinates && !rule.SkuidNotInSets.Contains(RulesetSpec.RateLimitSubordinateSetName))
        {
            differences.Add($"the rule of set {meter} in chain {chain} does not leave out the sub-UIDs in set "
                + $"{RulesetSpec.RateLimitSubordinateSetName}: they can fill the meter, and a full meter lets new uids through unlimited");
        }

        var expected = hasSubordinates ? new[] { RulesetSpec.RateLimitUsersSetName, RulesetSpec.RateLimitSubordinateSetName } : [RulesetSpec.RateLimitUsersSetName];
        foreach (var other in rule.SkuidNotInSets.Where(s => !expected.Contains(s)))
        {
            differences.Add($"the rule of set {meter} in chain {chain} also leaves out the uids in set {other}: they escape the default connection rate");
        }
    }

    // The uids a rule's `meta skuid` matches, merged: nft lists a one-uid range (an /etc/subuid line of count 1) as a
    // plain uid, so that is a range too. Null when the rule matches no uid or uid range.
    private static IReadOnlyList<UidRange>? MatchedUids(NftJson.Rule rule) =>
        rule.SkuidRanges is { } ranges ? UidRange.Merge(ranges)
        : rule.SkuidValue is { } uid ? [new UidRange(uid, uid)]
        : null;

    private static void CheckCounter(IReadOnlyList<NftJson.TableObject> objects, string name, List<string> differences)
    {
        if (!objects.Any(o => o.Kind == "counter" && NftJson.String(o.Body, "name") == name))
        {
            differences.Add($"counter {name} is missing");
        }
    }

    /// <summary>
    /// The packets a named counter of the table has counted (<c>ratelimit_refused</c>, <c>ratelimit_refused_uidN</c>); null
    /// when it is not there.
    /// </summary>
    public static long? CounterPackets(JsonDocument listed, string table, string counter)
    {
        ArgumentNullException.ThrowIfNull(listed);
        var found = NftJson.Objects(listed, table).FirstOrDefault(o => o.Kind == "counter" && NftJson.String(o.Body, "name") == counter);
        return found is not null && found.Body.TryGetProperty("packets", out var packets) && packets.TryGetInt64(out var count) ? count : null;
    }
}
