using System.Text.Json;
using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>The verifier on the connection rate limit: real nft 1.0.6 listings (see <see cref="SampleCapture"/>).</summary>
public class RateLimitVerifierTests
{
    private static readonly RulesetSpec RateLimited = RulesetRendererTests.RateLimited;

    [Test]
    public void The_rate_limited_table_matches()
    {
        Assert.That(Differences("rate-limits.json", RateLimited), Is.Empty);
    }

    [Test]
    public void A_tampered_meter_rate_is_reported_with_both_rates()
    {
        var differences = Differences("rate-limit-tampered.json", RateLimited);

        Assert.That(differences, Is.EqualTo(new[]
        {
            "the rule in chain output_filter for the default connection rate (20/s burst 50, set ratelimit_meter) limits over 1000/second burst 50, expected over 20/second burst 50",
        }));
    }

    [Test]
    public void A_meter_rule_that_leaves_out_the_listeners_port_is_reported()
    {
        // Direct connections to the listener would then escape the connection rate (each costs the daemon an accept, an
        // attribution and a 421).
        var differences = Differences("rate-limit-without-listener.json", RateLimited);

        Assert.That(differences, Is.EqualTo(new[]
        {
            "the rule in chain output_filter for the default connection rate (20/s burst 50, set ratelimit_meter) does not cover port(s) 10025",
        }));
    }

    [Test]
    public void A_missing_meter_rule_is_reported()
    {
        var differences = Differences("rate-limit-rule-missing.json", RateLimited);

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.StartWith("no rule in chain output_filter enforces the default connection rate (20/s burst 50"));
    }

    [Test]
    public void A_tampered_user_rate_is_reported_naming_the_uid()
    {
        var differences = Differences("user-rate-tampered.json", RateLimited);

        Assert.That(differences, Has.Count.EqualTo(1));
        Assert.That(differences[0], Does.Contain("uid 1005's own connection rate (5/s burst 10) limits over 5/second burst 100"));
    }

    [Test]
    public void A_table_without_the_rate_limit_is_reported_when_the_spec_asks_for_one()
    {
        var differences = Differences("everything.json", RateLimited);

        Assert.That(differences, Does.Contain("set ratelimit_meter is missing"));
        Assert.That(differences, Does.Contain("counter ratelimit_refused is missing"));
        Assert.That(differences, Does.Contain("counter ratelimit_refused_uid1005 is missing"));
        Assert.That(differences.Any(d => d.StartsWith("no rule in chain output_filter enforces uid 1005's own connection rate", StringComparison.Ordinal)));
    }

    [Test]
    public void Rate_limit_rules_the_spec_does_not_ask_for_are_unexpected()
    {
        var differences = Differences("rate-limits.json", RulesetRendererTests.Everything);

        Assert.That(differences, Has.Count.EqualTo(2));
        Assert.That(differences, Has.All.StartWith("unexpected rule in chain output_filter: it rejects"));
    }

    [Test]
    public void A_different_user_rate_in_the_spec_is_a_difference()
    {
        var spec = RateLimited with { UserConnectionRates = [new(1006, null), new(1005, new(5, 11))] };

        Assert.That(Differences("rate-limits.json", spec), Has.Some.Contains("burst 10, expected over 5/second burst 11"));
    }

    [Test]
    public void The_named_counter_is_read_from_a_listing()
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", "rate-limits.json")));

        Assert.That(RulesetVerifier.CounterPackets(listed, "smtp_interceptor", RulesetSpec.RateLimitCounterName), Is.Zero);
        Assert.That(RulesetVerifier.CounterPackets(listed, "smtp_interceptor", "ratelimit_refused_uid1005"), Is.Zero);
        Assert.That(RulesetVerifier.CounterPackets(listed, "smtp_interceptor", "no_such_counter"), Is.Null);
    }

    internal static IReadOnlyList<string> Differences(string sample, RulesetSpec spec)
    {
        using var listed = JsonDocument.Parse(NetfilterTestData.Read(Path.Combine("Samples", sample)));
        return RulesetVerifier.FindDifferences(listed, spec);
    }
}
