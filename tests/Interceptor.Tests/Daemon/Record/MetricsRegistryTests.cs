using Interceptor.Daemon.Record;
using Interceptor.Store;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Record;

/// <summary>The series the alert rules and the dashboard use exist before any event, and count the right events.</summary>
[TestFixture]
public sealed class MetricsRegistryTests
{
    private static Dictionary<string, string> Samples(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.StartsWith('#'))
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);

    [Test]
    public void Labelled_counters_exist_at_zero_before_any_event()
    {
        var samples = Samples(new MetricsRegistry(perUser: false).Render(0));
        Assert.Multiple(() =>
        {
            Assert.That(samples["smtpi_transactions_total{outcome=\"delivered\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_transactions_total{outcome=\"unknown\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_messages_refused_total{reason=\"Suspended\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_suspensions_total{source=\"automatic\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_suspensions_total{source=\"admin\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_connections_refused_total{reason=\"owner_unknown\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_upstream_failures_total{stage=\"connect\"}"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_store_prunes_total"], Is.EqualTo("0"));
            Assert.That(samples["smtpi_store_quota_history_lost_total"], Is.EqualTo("0"));
            Assert.That(samples, Does.Not.ContainKey("smtpi_store_healthy"), "no store yet, no store series");
        });
    }

    [Test]
    public void Upstream_failures_store_pruning_and_store_health_are_counted()
    {
        var metrics = new MetricsRegistry(perUser: false);
        var health = new StoreHealth("/x", 7, null, null, false);
        metrics.Store = () => health;
        metrics.UpstreamFailed("connect");
        metrics.UpstreamFailed("connect");
        metrics.UpstreamFailed("data");
        metrics.StorePruned(quotaHistoryLost: false);
        metrics.StorePruned(quotaHistoryLost: true);
        metrics.RecordConnectionRefused("owner_unknown");

        var healthy = Samples(metrics.Render(0));
        health = health with { LastFailure = "disk full" };
        var failing = Samples(metrics.Render(0));
        Assert.Multiple(() =>
        {
            Assert.That(healthy["smtpi_upstream_failures_total{stage=\"connect\"}"], Is.EqualTo("2"));
            Assert.That(healthy["smtpi_upstream_failures_total{stage=\"data\"}"], Is.EqualTo("1"));
            Assert.That(healthy["smtpi_upstream_failures_total{stage=\"command\"}"], Is.EqualTo("0"));
            Assert.That(healthy["smtpi_store_prunes_total"], Is.EqualTo("2"));
            Assert.That(healthy["smtpi_store_quota_history_lost_total"], Is.EqualTo("1"));
            Assert.That(healthy["smtpi_connections_refused_total{reason=\"owner_unknown\"}"], Is.EqualTo("1"));
            Assert.That(healthy["smtpi_store_commits_total"], Is.EqualTo("7"));
            Assert.That(healthy["smtpi_store_healthy"], Is.EqualTo("1"));
            Assert.That(failing["smtpi_store_healthy"], Is.EqualTo("0"));
        });
    }
}
