using Interceptor.Core.Policy;

namespace Interceptor.Tests.Core.Policy;

/// <summary>The policy's meter: refusals by reason (per user only when asked), suspensions by source, zeros on demand.</summary>
[TestFixture]
public sealed class PolicyMetricsTests
{
    [Test]
    public void Refusals_and_suspensions_are_counted_with_the_labels_the_rules_use()
    {
        using var metrics = new PolicyMetrics(perUser: false);
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.Refused(RefusalKind.MessagesPerHour, 1001, "alice");
        metrics.Refused(RefusalKind.MessagesPerHour, 1002, "bob");
        metrics.Refused(RefusalKind.Suspended, 1001, "alice");
        metrics.Suspended(new Suspension(1001, "alice", "too many refusals", DateTimeOffset.UnixEpoch, SuspensionSource.Automatic));

        var totals = recorder.Totals();
        Assert.Multiple(() =>
        {
            Assert.That(totals["smtpi_messages_refused_total{reason=MessagesPerHour}"], Is.EqualTo(2));
            Assert.That(totals["smtpi_messages_refused_total{reason=Suspended}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_suspensions_total{source=automatic}"], Is.EqualTo(1));
            Assert.That(totals.Keys, Has.None.StartsWith("smtpi_user_"), "no per-user series unless Metrics.PerUser");
        });
    }

    [Test]
    public void Per_user_refusals_name_the_user_and_the_reason_when_asked_for()
    {
        using var metrics = new PolicyMetrics(perUser: true);
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.Refused(RefusalKind.RecipientsPerDay, 1001, "alice");

        Assert.That(recorder.Totals()["smtpi_user_refusals_total{user=alice,reason=RecipientsPerDay}"], Is.EqualTo(1));
    }

    [Test]
    public void Zeros_cover_every_reason_and_every_source()
    {
        using var metrics = new PolicyMetrics(perUser: false);
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.RecordZeros();

        var totals = recorder.Totals();
        Assert.Multiple(() =>
        {
            foreach (var kind in Enum.GetValues<RefusalKind>())
            {
                Assert.That(totals[$"smtpi_messages_refused_total{{reason={kind}}}"], Is.Zero);
            }

            Assert.That(totals["smtpi_suspensions_total{source=admin}"], Is.Zero);
            Assert.That(totals["smtpi_suspensions_total{source=automatic}"], Is.Zero);
        });
    }
}
