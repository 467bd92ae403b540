using Interceptor.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Netfilter;

/// <summary>The connection rate limit in the rendered script, beyond what the golden file rate-limits.nft pins.</summary>
public class RateLimitRenderingTests
{
    private static readonly RulesetSpec Plain = new("smtp_interceptor", 10025, [25, 587], [0]);

    [Test]
    public void Without_a_rate_the_table_has_no_rate_limit_object_at_all()
    {
        var script = RulesetRenderer.Render(Plain);

        Assert.That(script, Does.Not.Contain("ratelimit").And.Not.Contain("limit rate"));
    }

    [Test]
    public void The_default_meter_is_keyed_on_the_uid_leaves_out_own_users_and_covers_every_intercepted_port_and_the_listeners()
    {
        var script = RulesetRenderer.Render(Plain with { DefaultConnectionRate = new(7, 9) });
        var rule = script.Split('\n').Single(l => l.Contains("update @ratelimit_meter", StringComparison.Ordinal));

        Assert.That(rule.Trim(), Does.StartWith(
            "tcp dport { 25, 587, 10025 } meta skuid != @ratelimit_own_users ct state new update @ratelimit_meter { meta skuid limit rate over 7/second burst 9 packets } counter name \"ratelimit_refused\" reject with tcp reset"));
        Assert.That(script, Does.Contain("counter ratelimit_refused {"));
        Assert.That(script, Does.Not.Contain("ratelimit_refused_uid"));
    }

    [Test]
    public void A_user_rate_comes_after_the_suspensions_and_before_the_default_meter_with_its_own_counter()
    {
        var script = RulesetRenderer.Render(Plain with
        {
            DefaultConnectionRate = new(20, 50),
            UserConnectionRates = [new(1001, new(2, 3)), new(1002, null)],
        });
        var lines = script.Split('\n').ToList();
        var subuids = lines.FindIndex(l => l.Contains("@suspended_subuids ct state new", StringComparison.Ordinal));
        var own = lines.FindIndex(l => l.Contains("meta skuid 1001 ct state new limit rate over 2/second burst 3 packets counter name \"ratelimit_refused_uid1001\" reject", StringComparison.Ordinal));
        var meter = lines.FindIndex(l => l.Contains("update @ratelimit_meter", StringComparison.Ordinal));

        Assert.That(own, Is.GreaterThan(subuids));
        Assert.That(meter, Is.GreaterThan(own));
        Assert.That(script, Does.Contain("counter ratelimit_refused_uid1001 {"));
        Assert.That(script, Does.Not.Contain("meta skuid 1002"), "an unlimited user has no rule");
        Assert.That(script, Does.Contain("elements = { 1001, 1002 }"), "both are left out of the default meter");
    }

    [Test]
    public void A_user_rate_alone_renders_no_meter()
    {
        var script = RulesetRenderer.Render(Plain with { UserConnectionRates = [new(1001, new(2, 3))] });

        Assert.That(script, Does.Contain("ratelimit_refused_uid1001").And.Not.Contain("ratelimit_meter"));
    }

    [Test]
    public void Two_different_rates_for_one_uid_are_refused()
    {
        Assert.That(
            () => Plain with { UserConnectionRates = [new(1001, new(2, 3)), new(1001, null)] },
            Throws.ArgumentException.With.Message.Contains("uid 1001 has two different connection rates"));
    }

    [TestCase(0, 5)]
    [TestCase(5, 0)]
    [TestCase(1_000_001, 5)]
    public void A_rate_outside_1_to_a_million_is_refused(int perSecond, int burst)
    {
        Assert.That(() => new ConnectionRate(perSecond, burst), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void Specs_with_different_rates_differ()
    {
        var a = Plain with { DefaultConnectionRate = new(20, 50) };
        var b = Plain with { DefaultConnectionRate = new(20, 51) };

        Assert.That(a, Is.Not.EqualTo(b));
        Assert.That(a, Is.EqualTo(Plain with { DefaultConnectionRate = new(20, 50) }));
        Assert.That(a.ToString(), Does.Contain("DefaultConnectionRate = 20/s burst 50"));
        Assert.That(Plain.ToString(), Does.Not.Contain("ConnectionRate"));
    }
}
