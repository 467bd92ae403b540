using Interceptor.Daemon.Intercept;

namespace Interceptor.Tests.Daemon.Intercept;

/// <summary>Interception's meter: read when observed, and only once its sources exist.</summary>
[TestFixture]
public sealed class InterceptMetricsTests
{
    [Test]
    public void Active_sessions_are_read_when_observed()
    {
        using var metrics = new InterceptMetrics();
        using var recorder = new MeterRecorder(metrics.Meter);
        var before = recorder.Observe();
        var sessions = 3;
        metrics.ActiveSessions = () => sessions;
        var three = recorder.Observe();
        sessions = 0;
        var none = recorder.Observe();

        Assert.Multiple(() =>
        {
            Assert.That(before, Is.Empty, "no listener, no table check: no series");
            Assert.That(three["smtpi_active_sessions"], Is.EqualTo(3));
            Assert.That(none["smtpi_active_sessions"], Is.Zero);
            Assert.That(none, Does.Not.ContainKey("smtpi_listener_lockdown"), "no table check yet");
        });
    }
}
