using Interceptor.Store;

namespace Interceptor.Tests.Store;

/// <summary>The store's meter: health and commits read when observed, pruning counted.</summary>
[TestFixture]
public sealed class StoreMetricsTests
{
    [Test]
    public void Health_is_observed_as_it_is_at_that_moment_and_absent_before_the_store_opens()
    {
        using var metrics = new StoreMetrics();
        using var recorder = new MeterRecorder(metrics.Meter);
        var before = recorder.Observe();

        var health = new StoreHealth("/x", 7, null, null, false);
        metrics.Health = () => health;
        var healthy = recorder.Observe();
        health = health with { LastFailure = "disk full" };
        var failing = recorder.Observe();
        health = health with { LastFailure = null, Broken = true };
        var broken = recorder.Observe();

        Assert.Multiple(() =>
        {
            Assert.That(before, Is.Empty, "no store yet, no store series");
            Assert.That(healthy["smtpi_store_healthy"], Is.EqualTo(1));
            Assert.That(healthy["smtpi_store_commits_total"], Is.EqualTo(7));
            Assert.That(failing["smtpi_store_healthy"], Is.Zero);
            Assert.That(broken["smtpi_store_healthy"], Is.Zero);
        });
    }

    [Test]
    public void Prunings_are_counted_and_those_that_lost_quota_history_apart()
    {
        using var metrics = new StoreMetrics();
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.RecordZeros();
        metrics.Pruned(quotaHistoryLost: false);
        metrics.Pruned(quotaHistoryLost: true);

        var totals = recorder.Totals();
        Assert.Multiple(() =>
        {
            Assert.That(totals["smtpi_store_prunes_total"], Is.EqualTo(2));
            Assert.That(totals["smtpi_store_quota_history_lost_total"], Is.EqualTo(1));
        });
    }
}
