using Interceptor.Core.Options;

namespace Interceptor.Tests.Core;

/// <summary>The file descriptor arithmetic: caps derived from the limit, configured caps that do not fit refused.</summary>
[TestFixture]
public sealed class DescriptorBudgetTests
{
    [Test]
    public void The_default_cap_fits_in_the_units_LimitNOFILE_with_the_reserve_free()
    {
        // The unit's LimitNOFILE=65536 and a typical ~200 descriptors open at start (runtime, assemblies, store).
        Assert.That(DescriptorBudget.TryPlan(65536, 200, 0, reuseUpstreams: true, out var budget, out var error), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(DescriptorBudget.DefaultMaxConnections));
            Assert.That(budget.IdleUpstreams, Is.EqualTo(1000));
            Assert.That(budget.Sessions, Is.EqualTo(10_000), "issue 19: 10,000 concurrent sessions by default");
            Assert.That(budget.Needed, Is.EqualTo(200 + 160 + (10_000 * 2) + 1000));
            Assert.That(budget.Needed, Is.LessThanOrEqualTo(65536));
            Assert.That(budget.Warning, Is.Null);
        });
    }

    [TestCase(1024, 200, true, 221)] // (1024 - 200 - 160) / 3: each session may leave an idle upstream behind
    [TestCase(1024, 200, false, 332)] // (1024 - 200 - 160) / 2
    [TestCase(512, 141, true, 70)] // the integration test's daemon
    [TestCase(5360, 200, true, 2000)] // past 1000 idle upstreams the cache's own bound applies: (5360 - 200 - 160 - 1000) / 2
    [TestCase(16384, 200, true, 7512)] // the unit's LimitNOFILE before issue 19: (16384 - 200 - 160 - 1000) / 2
    [TestCase(20000, 143, true, 9348)] // a login shell's 20,000 (this test rig): (20000 - 143 - 160 - 1000) / 2
    public void A_low_limit_derives_a_smaller_cap_that_fits_and_warns(long limit, int open, bool reuse, int sessions)
    {
        Assert.That(DescriptorBudget.TryPlan(limit, open, 0, reuse, out var budget, out var error), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(sessions));
            Assert.That(budget.Needed, Is.LessThanOrEqualTo(limit), "the plan fits");
            Assert.That(budget.Needed + DescriptorBudget.PerSession + 1, Is.GreaterThan(limit), "and one more session would not");
            Assert.That(budget.Warning, Does.Contain("Listen.MaxConnections").And.Contain($"{sessions} sessions").And.Contain("LimitNOFILE"));
        });
    }

    [Test]
    public void A_configured_cap_that_fits_is_kept_as_it_is()
    {
        Assert.That(DescriptorBudget.TryPlan(1024, 200, 100, reuseUpstreams: true, out var budget, out var error), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(100));
            Assert.That(budget.IdleUpstreams, Is.EqualTo(100), "no more idle upstreams than sessions");
            Assert.That(budget.Warning, Is.Null);
        });
    }

    [Test]
    public void A_configured_cap_that_does_not_fit_is_refused_with_the_arithmetic_and_what_to_change()
    {
        Assert.That(DescriptorBudget.TryPlan(1024, 200, 5000, reuseUpstreams: true, out _, out var error), Is.False);
        Assert.That(error, Does.Contain("Listen.MaxConnections 5000").And.Contain("11360").And.Contain("1024")
            .And.Contain("LimitNOFILE").And.Contain("lower Listen.MaxConnections to 221"));
    }

    [Test]
    public void A_limit_with_no_room_for_one_session_is_refused()
    {
        Assert.That(DescriptorBudget.TryPlan(256, 200, 0, reuseUpstreams: true, out _, out var error), Is.False);
        Assert.That(error, Does.Contain("no room for a single SMTP session").And.Contain("LimitNOFILE"));
    }

    [Test]
    public void Without_reuse_no_idle_upstream_is_budgeted()
    {
        Assert.That(DescriptorBudget.TryPlan(16384, 200, 0, reuseUpstreams: false, out var budget, out _), Is.True);
        Assert.That(budget.IdleUpstreams, Is.Zero);
    }
}
