using System.Text.Json;

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

        const string chain = RulesetSpec.FilterChainName;
        CheckUidSet(objects, RulesetSpec.RateLimitUsersSetName, [.. spec.UserConnectionRates.Select(r => r.Uid)],
            "these users' connections are also counted by the default meter", "these users escape the default connection rate", differences);

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
            if (index >= 0 && rules[index].SkuidNotInSet != RulesetSpec.RateLimitUsersSetName)
            {
                differences.Add($"the rule of set {RulesetSpec.RateLimitMeterSetName} in chain {chain} does not leave out the users in set "
                    + $"{RulesetSpec.RateLimitUsersSetName}: users with their own rate are limited by the default too");
            }

            CheckRateRule(rules, index, rate, RulesetSpec.RateLimitCounterName, spec, isOurs, exempt,
                $"the default connection rate ({rate}, set {RulesetSpec.RateLimitMeterSetName})", differences);
        }
    }

    private static void CheckRateRule(
        List<NftJson.Rule> rules, int index, ConnectionRate rate, string counter, RulesetSpec spec, bool[] isOurs, int exempt, string what,
        List<string> differences)
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

        if (rule.HasOtherMatch || rule.SkuidSet is not null)
        {
            differences.Add($"the rule in chain {chain} for {what} has a match or statement smtp-interceptor does not write: it {rule.Describe()}");
        }

        var uncovered = spec.Ports.Where(p => !rule.Covers(p)).ToList();
        if (uncovered.Count > 0 && !rule.HasOtherMatch)
        {
            differences.Add($"the rule in chain {chain} for {what} does not cover port(s) {Join(uncovered)}");
        }

        if (exempt >= 0 && index < exempt)
        {
            differences.Add($"the rule in chain {chain} for {what} comes before the rule for set {RulesetSpec.ExemptSetName}: exempt users could be refused");
        }
    }

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
