using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Policy;

public class AutoSuspensionRulesTests
{
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    private AutoSuspensionRules Rules(int refusals = 3, int ratio = 75, int minimum = 4) => new(
        new SuspensionOptions { RefusalLimit = refusals, RefusalWindow = TimeSpan.FromMinutes(10), FailureRatioPercent = ratio, FailureMinimum = minimum, FailureWindow = TimeSpan.FromMinutes(60) },
        _clock);

    [Test]
    public void A_burst_of_refusals_trips_at_the_limit()
    {
        var rules = Rules();

        Assert.That(rules.ObserveRefusal(1001, _clock.Now), Is.Null);
        Assert.That(rules.ObserveRefusal(1001, _clock.Now), Is.Null);
        Assert.That(rules.ObserveRefusal(1001, _clock.Now), Does.Contain("3 quota refusals within 10 min"));
    }

    [Test]
    public void Refusals_spread_beyond_the_window_do_not_trip()
    {
        var rules = Rules();
        for (var i = 0; i < 10; i++)
        {
            Assert.That(rules.ObserveRefusal(1001, _clock.Now), Is.Null);
            _clock.Advance(TimeSpan.FromMinutes(6));
        }
    }

    [Test]
    public void A_high_upstream_failure_ratio_trips_once_the_minimum_is_reached()
    {
        var rules = Rules();

        Assert.That(rules.ObserveOutcome(1001, _clock.Now, TransactionOutcome.Rejected), Is.Null);
        Assert.That(rules.ObserveOutcome(1001, _clock.Now, TransactionOutcome.Deferred), Is.Null);
        Assert.That(rules.ObserveOutcome(1001, _clock.Now, TransactionOutcome.Rejected), Is.Null, "below the minimum count");
        Assert.That(rules.ObserveOutcome(1001, _clock.Now, TransactionOutcome.Delivered), Does.Contain("3 of 4 messages rejected or deferred"));
    }

    [Test]
    public void A_mostly_delivering_user_is_left_alone()
    {
        var rules = Rules();
        for (var i = 0; i < 20; i++)
        {
            Assert.That(rules.ObserveOutcome(1001, _clock.Now, i % 3 == 0 ? TransactionOutcome.Rejected : TransactionOutcome.Delivered), Is.Null);
        }
    }

    [Test]
    public void Our_own_refusals_do_not_count_as_upstream_failures()
    {
        var rules = Rules(minimum: 1, ratio: 1);

        Assert.That(rules.ObserveOutcome(1001, _clock.Now, TransactionOutcome.Refused), Is.Null);
    }

    [Test]
    public void Zero_disables_a_rule()
    {
        var rules = Rules(refusals: 0, ratio: 0, minimum: 1);

        Assert.That(rules.ObserveRefusal(1001, _clock.Now), Is.Null);
        Assert.That(rules.ObserveOutcome(1001, _clock.Now, TransactionOutcome.Rejected), Is.Null);
    }

    [Test]
    public void Reset_forgets_the_history()
    {
        var rules = Rules();
        rules.ObserveRefusal(1001, _clock.Now);
        rules.ObserveRefusal(1001, _clock.Now);
        rules.Reset(1001);

        Assert.That(rules.ObserveRefusal(1001, _clock.Now), Is.Null);
    }
}
