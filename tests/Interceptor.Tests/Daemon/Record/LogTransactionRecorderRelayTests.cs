using Interceptor.Core.Events;
using Interceptor.Daemon.Record;

namespace Interceptor.Tests.Daemon.Record;

/// <summary>The transaction log line names the pool relay (issue 15) only when one carried the message.</summary>
[TestFixture]
public class LogTransactionRecorderRelayTests
{
    private static TransactionEvent Event(string? relay) =>
        new("id1", DateTimeOffset.UnixEpoch, 1001, "alice", "a@site.test", 1, 10, "192.0.2.25:25", "10.0.0.2:587", "250 2.0.0 queued", TimeSpan.FromMilliseconds(5))
        {
            Outcome = TransactionOutcome.Delivered,
            Relay = relay,
        };

    [Test]
    public void A_pooled_message_has_relay_after_upstream_in_the_text_and_the_fields()
    {
        var logger = new RecordingLogger();

        new LogTransactionRecorder(logger).Record(Event("relay2"));

        var line = logger.Entries.Single();
        Assert.That(line.Text, Does.Contain(" upstream=10.0.0.2:587 relay=relay2 reply="));
        Assert.That(line.State["Relay"], Is.EqualTo("relay2"));
    }

    [Test]
    public void A_direct_message_keeps_todays_line()
    {
        var logger = new RecordingLogger();

        new LogTransactionRecorder(logger).Record(Event(null));

        var line = logger.Entries.Single();
        Assert.That(line.Text, Does.Contain(" upstream=10.0.0.2:587 reply=").And.Not.Contain("relay="));
        Assert.That(line.State.ContainsKey("Relay"), Is.False);
    }

    [TestCase(null, false)]
    [TestCase("relay2", false)]
    [TestCase(null, true)]
    [TestCase("relay2", true)]
    public void Every_field_of_the_line_is_given_in_the_order_of_its_template(string? relay, bool subordinate)
    {
        var logger = new RecordingLogger();
        var transaction = Event(relay) with { SubordinateUid = subordinate ? 231072u : null };

        new LogTransactionRecorder(logger).Record(transaction);

        var line = logger.Entries.Single();
        string[] expected =
        [
            "Id", "Uid", "User", .. subordinate ? ["SubUid"] : Array.Empty<string>(), "Sender", "Recipients", "SizeBytes",
            "OriginalDestination", "Upstream", .. relay is null ? Array.Empty<string>() : ["Relay"], "Reply", "DurationMs",
        ];
        Assert.That(line.State.Keys, Is.EqualTo(expected));
        Assert.That(line.Text, subordinate ? Does.Contain(" user=alice subuid=231072 from=") : Does.Not.Contain("subuid="));
    }

    [TestCase(UnsentKind.AbandonedInData, 1)]
    [TestCase(UnsentKind.RefusedAtData, 1)]
    [TestCase(UnsentKind.Reset, 0)]
    public void A_transaction_that_reached_data_keeps_its_line_those_tallied_before_data_do_not(UnsentKind unsent, int lines)
    {
        // Before DATA, the store's tally logs them (one line per user, kind and minute); from DATA on they have a row and
        // no tally, so without their own line a client's hang-up during DATA would leave the journal silent.
        var logger = new RecordingLogger();

        new LogTransactionRecorder(logger).Record(Event(null) with { Outcome = TransactionOutcome.Refused, Unsent = unsent });

        Assert.That(logger.Entries, Has.Count.EqualTo(lines));
    }
}
