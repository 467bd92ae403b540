using Interceptor.Daemon.Pool;

namespace Interceptor.Tests.Daemon.Pool;

/// <summary>Per-relay series: the state each relay is in, messages and failures, messages of the last hour.</summary>
public class PoolMetricsTests
{
    [Test]
    public async Task Each_relay_reports_its_state_its_messages_and_its_failures()
    {
        await using var f = new PoolFixture();
        using var recorder = new MeterRecorder(f.Metrics.Meter);
        f.Metrics.Snapshot = f.Pool.Snapshot;
        f.Metrics.Hour = f.Observer.Hour;
        f.Metrics.Relays = ["relay1", "relay2"];
        f.Metrics.Time = f.Clock;

        f.Metrics.RecordZeros();
        f.Observer.Carried("relay1");
        f.Observer.Carried("relay1");
        f.Observer.Failed("relay2", "connection refused");
        var counters = recorder.Totals();
        f.Observer.Publish(f.Pool.Burn("relay1", "by an admin: test"));
        var observed = recorder.Observe();

        Assert.That(counters["smtpi_relay_messages_total{relay=relay1}"], Is.EqualTo(2));
        Assert.That(counters["smtpi_relay_messages_total{relay=relay2}"], Is.Zero, "at 0 from the start");
        Assert.That(counters["smtpi_relay_failures_total{relay=relay2}"], Is.EqualTo(1));
        Assert.That(observed["smtpi_relay_state{relay=relay1,state=burned}"], Is.EqualTo(1));
        Assert.That(observed["smtpi_relay_state{relay=relay1,state=in_rotation}"], Is.Zero);
        Assert.That(observed["smtpi_relay_state{relay=relay2,state=in_rotation}"], Is.EqualTo(1), "promoted");
        Assert.That(observed["smtpi_relay_messages_last_hour{relay=relay1}"], Is.EqualTo(2));
    }
}
