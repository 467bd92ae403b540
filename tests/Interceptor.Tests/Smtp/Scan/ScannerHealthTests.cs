using Interceptor.Smtp.Scan;

namespace Interceptor.Tests.Smtp.Scan;

/// <summary>Whose a failed scan is: hers only while the scanner judges everyone else's mail and fails no one else's.</summary>
public class ScannerHealthTests
{
    private const uint Alice = 1001;
    private const uint Bob = 1002;
    private const uint Carol = 1003;

    private long _now = 1_000_000;

    private ScannerHealth Health() => new(TimeSpan.FromSeconds(60), () => _now);

    [Test]
    public void A_failure_while_others_are_judged_and_nobody_else_fails_is_hers()
    {
        var health = Health();
        health.Succeeded(Bob);
        health.Succeeded(Alice);
        _now += 30_000;

        Assert.That(health.FailedFor(Alice), Is.True);
        Assert.That(health.FailedFor(Alice), Is.True, "her own earlier failures do not excuse her");
    }

    [Test]
    public void A_failure_when_someone_else_failed_too_is_the_scanners()
    {
        // Someone wedged the scanner (spamd's children held by direct connections), or it is down: everyone fails.
        var health = Health();
        health.Succeeded(Bob);
        _ = health.FailedFor(Carol);

        Assert.That(health.FailedFor(Alice), Is.False);
        Assert.That(health.FailedFor(Bob), Is.False, "Alice's failure is someone else's for Bob too");
    }

    [Test]
    public void A_failure_with_nobody_else_judged_recently_is_not_held_against_her()
    {
        var health = Health();
        Assert.That(health.FailedFor(Alice), Is.False, "nothing known");

        health.Succeeded(Alice);
        Assert.That(health.FailedFor(Alice), Is.False, "only her own successes");

        health.Succeeded(Bob);
        _now += 61_000;
        Assert.That(health.FailedFor(Alice), Is.False, "bob's success is older than the window");
    }

    [Test]
    public void Another_users_success_is_remembered_behind_her_own_later_ones()
    {
        var health = Health();
        health.Succeeded(Bob);
        health.Succeeded(Alice);
        health.Succeeded(Alice);
        health.Succeeded(Alice);

        Assert.That(health.FailedFor(Alice), Is.True, "bob's success is still the latest of someone else");
        _now += 10_000;
        _ = health.FailedFor(Carol);
        Assert.That(health.FailedFor(Alice), Is.False, "carol failed meanwhile");
    }
}
