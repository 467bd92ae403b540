using Interceptor.Core.Events;
using Interceptor.Smtp.Metrics;

namespace Interceptor.Tests.Smtp.Metrics;

/// <summary>The relay's meter: transactions by outcome and reply class, what was relayed, upstream failures.</summary>
[TestFixture]
public sealed class RelayMetricsTests
{
    internal static TransactionEvent Transaction(TransactionOutcome outcome, string reply, int recipients = 2, long size = 1000) =>
        new("id", DateTimeOffset.UnixEpoch, 1001, "alice", "alice@client.test", recipients, size, "203.0.113.5:25", "203.0.113.5:25", reply,
            TimeSpan.FromSeconds(1)) { Outcome = outcome };

    [Test]
    public void Only_delivered_transactions_count_as_relayed_and_every_one_counts_its_reply_class()
    {
        using var metrics = new RelayMetrics(perUser: false);
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.Record(Transaction(TransactionOutcome.Delivered, "250 2.0.0 queued", recipients: 3, size: 4096));
        metrics.Record(Transaction(TransactionOutcome.Deferred, "451 4.7.1 try later"));
        metrics.Record(Transaction(TransactionOutcome.Rejected, "554 5.7.1 no"));
        metrics.Record(Transaction(TransactionOutcome.Deferred, ""));
        metrics.UpstreamFailed("connect");
        metrics.UpstreamFailed("connect");
        metrics.UpstreamFailed("data");

        var totals = recorder.Totals();
        Assert.Multiple(() =>
        {
            Assert.That(totals["smtpi_transactions_total{outcome=delivered}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_transactions_total{outcome=deferred}"], Is.EqualTo(2));
            Assert.That(totals["smtpi_transactions_total{outcome=rejected}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_messages_relayed_total"], Is.EqualTo(1));
            Assert.That(totals["smtpi_recipients_relayed_total"], Is.EqualTo(3));
            Assert.That(totals["smtpi_bytes_relayed_total"], Is.EqualTo(4096));
            Assert.That(totals["smtpi_upstream_replies_total{class=2xx}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_upstream_replies_total{class=4xx}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_upstream_replies_total{class=5xx}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_upstream_replies_total{class=none}"], Is.EqualTo(1));
            Assert.That(totals["smtpi_upstream_failures_total{stage=connect}"], Is.EqualTo(2));
            Assert.That(totals["smtpi_upstream_failures_total{stage=data}"], Is.EqualTo(1));
            Assert.That(totals.Keys, Has.None.StartsWith("smtpi_user_"), "no per-user series unless Metrics.PerUser");
        });
    }

    [Test]
    public void Per_user_transactions_name_the_user_and_the_outcome_when_asked_for()
    {
        using var metrics = new RelayMetrics(perUser: true);
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.Record(Transaction(TransactionOutcome.Delivered, "250 ok"));

        Assert.That(recorder.Totals()["smtpi_user_transactions_total{user=alice,outcome=delivered}"], Is.EqualTo(1));
    }

    [Test]
    public void Zeros_cover_every_outcome_reply_class_and_failure_stage()
    {
        using var metrics = new RelayMetrics(perUser: false);
        using var recorder = new MeterRecorder(metrics.Meter);
        metrics.RecordZeros();

        var totals = recorder.Totals();
        Assert.Multiple(() =>
        {
            foreach (var outcome in Enum.GetValues<TransactionOutcome>())
            {
                Assert.That(totals[$"smtpi_transactions_total{{outcome={outcome.ToString().ToLowerInvariant()}}}"], Is.Zero);
            }

            foreach (var stage in RelayMetrics.UpstreamFailureStages)
            {
                Assert.That(totals[$"smtpi_upstream_failures_total{{stage={stage}}}"], Is.Zero);
            }

            Assert.That(totals["smtpi_upstream_replies_total{class=none}"], Is.Zero);
            Assert.That(totals["smtpi_messages_relayed_total"], Is.Zero);
        });
    }

    [Test]
    public async Task Upstream_connections_are_observed_against_their_cap_with_waits_and_refusals()
    {
        using var metrics = new RelayMetrics(perUser: false);
        using var recorder = new MeterRecorder(metrics.Meter);
        Assert.That(recorder.Observe().Keys, Has.None.StartsWith("smtpi_upstream_connection"), "nothing before the listener exists");

        using var gate = new Interceptor.Smtp.Upstream.UpstreamDescriptorGate(2);
        metrics.UpstreamDescriptors = gate;
        await gate.EnterAsync(TimeSpan.FromSeconds(1), CancellationToken.None);
        await gate.EnterAsync(TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.CatchAsync<Interceptor.Smtp.Upstream.UpstreamDescriptorsExhaustedException>(() => gate.EnterAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None));
        gate.Release();

        var observed = recorder.Observe();
        Assert.Multiple(() =>
        {
            Assert.That(observed["smtpi_upstream_connections_open"], Is.EqualTo(1));
            Assert.That(observed["smtpi_upstream_connections_max"], Is.EqualTo(2));
            Assert.That(observed["smtpi_upstream_connection_waits_total"], Is.EqualTo(1));
            Assert.That(observed["smtpi_upstream_connection_refusals_total"], Is.EqualTo(1));
        });
    }
}
