using Interceptor.Daemon.Attribution;

namespace Interceptor.Tests.Daemon.Attribution;

/// <summary>Attribution's meter: refused connections by reason, owner-lookup latency in seconds.</summary>
[TestFixture]
public sealed class AttributionMetricsTests
{
    [Test]
    public void Refused_connections_are_counted_by_reason_and_every_reason_has_a_zero()
    {
        using var metrics = new AttributionMetrics();
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.RecordZeros();
        metrics.ConnectionRefused("owner_unknown");
        metrics.ConnectionRefused("owner_unknown");
        metrics.ConnectionRefused("not_redirected");

        var totals = recorder.Totals();
        Assert.Multiple(() =>
        {
            Assert.That(totals["smtpi_connections_refused_total{reason=owner_unknown}"], Is.EqualTo(2));
            Assert.That(totals["smtpi_connections_refused_total{reason=not_redirected}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_connections_refused_total{reason=local_destination}"], Is.Zero);
            Assert.That(totals["smtpi_connections_refused_total{reason=unknown_uid}"], Is.Zero);
            Assert.That(totals["smtpi_client_ports_unverified_total"], Is.Zero, "its alert needs the series from the start");
        });
    }

    [Test]
    public void Owner_lookups_are_recorded_in_seconds_with_microsecond_buckets()
    {
        using var metrics = new AttributionMetrics();
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.OwnerLookup(TimeSpan.FromMicroseconds(7));

        var lookup = recorder.Measurements.Single();
        Assert.Multiple(() =>
        {
            Assert.That(lookup.Instrument.Name, Is.EqualTo("smtpi_owner_lookup_seconds"));
            Assert.That(lookup.Instrument.Unit, Is.EqualTo("s"));
            Assert.That(lookup.Value, Is.EqualTo(0.000007).Within(1e-9));
            Assert.That(((System.Diagnostics.Metrics.Histogram<double>)lookup.Instrument).Advice?.HistogramBucketBoundaries,
                Is.EqualTo(new[] { 0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0005, 0.001, 0.01 }));
        });
    }
}
