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

    [TestCase(20000, 143, true)] // this rig's hard limit
    [TestCase(1024, 200, true)]
    [TestCase(16384, 200, false)]
    public void With_idle_release_off_the_plan_is_todays_and_every_session_has_its_upstream(long limit, int open, bool reuse)
    {
        Assert.That(DescriptorBudget.TryPlan(limit, open, 0, reuse, out var today, out _), Is.True);
        Assert.That(DescriptorBudget.TryPlan(limit, open, 0, reuse, out var off, out _, idleClientsRelease: false), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(off, Is.EqualTo(today));
            Assert.That(off.Upstreams, Is.EqualTo(off.Sessions + off.IdleUpstreams));
            Assert.That(off.UpstreamsShared, Is.False);
        });
    }

    [Test]
    public void With_idle_release_on_and_room_for_two_each_nothing_is_shared()
    {
        Assert.That(DescriptorBudget.TryPlan(65536, 200, 0, reuseUpstreams: true, out var budget, out var error, idleClientsRelease: true), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(10_000));
            Assert.That(budget.Upstreams, Is.EqualTo(11_000), "every session's upstream and 1,000 idle ones");
            Assert.That(budget.Needed, Is.EqualTo(200 + 160 + (10_000 * 2) + 1000));
            Assert.That(budget.Warning, Is.Null);
        });
    }

    [Test]
    public void With_idle_release_on_this_rigs_20000_fits_the_default_10000_sessions_sharing_the_rest_as_upstreams()
    {
        Assert.That(DescriptorBudget.TryPlan(20000, 143, 0, reuseUpstreams: true, out var budget, out var error, idleClientsRelease: true), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(10_000), "issue 19: 10,000 sessions (9,348 without the release)");
            Assert.That(budget.Upstreams, Is.EqualTo(20000 - 143 - 160 - 10_000));
            Assert.That(budget.IdleUpstreams, Is.EqualTo(1000));
            Assert.That(budget.Needed, Is.EqualTo(20000), "every descriptor but the reserve goes to connections");
            Assert.That(budget.UpstreamsShared, Is.True);
            Assert.That(budget.Warning, Does.StartWith("10000 sessions, at most 9697 of them with an upstream connection at once")
                .And.Contain("Relay.IdleClientReleaseSeconds").And.Contain("raise LimitNOFILE to 21303"));
        });
    }

    [TestCase(512, 141, 140, 71)] // the integration test's daemon: (512 - 141 - 160) = 211 → 140 sessions, 71 upstreams
    [TestCase(400, 141, 66, 33)] // 99 left → 66 + 33
    [TestCase(303, 141, 1, 1)] // 2 left: one session and its upstream
    public void With_idle_release_on_a_low_limit_derives_sessions_at_one_each_and_half_as_many_upstreams(long limit, int open, int sessions, int upstreams)
    {
        Assert.That(DescriptorBudget.TryPlan(limit, open, 0, reuseUpstreams: true, out var budget, out var error, idleClientsRelease: true), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(sessions));
            Assert.That(budget.Upstreams, Is.EqualTo(upstreams));
            Assert.That(budget.Upstreams * 2, Is.GreaterThanOrEqualTo(budget.Sessions), "at least half the sessions hold an upstream at once");
            Assert.That(budget.IdleUpstreams, Is.LessThanOrEqualTo(budget.Upstreams), "the idle cache fits in the upstream cap");
            Assert.That(budget.Needed, Is.LessThanOrEqualTo(limit));
            Assert.That(budget.Warning, Does.Contain($"derived from the file descriptor limit {limit}, not the default 10000: {sessions} sessions, at most")
                .And.Contain($"at most {upstreams} of them with an upstream connection").And.Contain("for the default"));
        });
    }

    [Test]
    public void With_idle_release_on_a_configured_cap_that_fits_only_shared_is_kept_and_warned_about()
    {
        Assert.That(DescriptorBudget.TryPlan(1024, 200, 400, reuseUpstreams: true, out var budget, out var error, idleClientsRelease: true), Is.True, error);
        Assert.Multiple(() =>
        {
            Assert.That(budget.Sessions, Is.EqualTo(400));
            Assert.That(budget.Upstreams, Is.EqualTo(1024 - 200 - 160 - 400));
            Assert.That(budget.Warning, Does.StartWith("400 sessions, at most 264 of them").And.Not.Contain("derived"));
        });
    }

    [Test]
    public void With_idle_release_on_a_configured_cap_beyond_two_thirds_is_refused_with_the_arithmetic()
    {
        // 664 left: at most 442 sessions with 222 upstreams; 5000 sessions need 5000 + 2500 + 360.
        Assert.That(DescriptorBudget.TryPlan(1024, 200, 5000, reuseUpstreams: true, out _, out var error, idleClientsRelease: true), Is.False);
        Assert.That(error, Does.Contain("Listen.MaxConnections 5000 needs 7860 file descriptors").And.Contain("the limit is 1024")
            .And.Contain("Relay.IdleClientReleaseSeconds").And.Contain("raise LimitNOFILE to at least 7860").And.Contain("lower Listen.MaxConnections to 442"));
    }

    [Test]
    public void With_idle_release_on_a_limit_with_no_room_for_one_session_is_refused()
    {
        Assert.That(DescriptorBudget.TryPlan(361, 200, 0, reuseUpstreams: true, out _, out var error, idleClientsRelease: true), Is.False);
        Assert.That(error, Does.Contain("no room for a single SMTP session").And.Contain("LimitNOFILE"));
    }
}
