using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Tests.Store;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Policy;

/// <summary>The quota windows rebuilt from the real journal at start, against what the running ledger counted.</summary>
[TestFixture]
public sealed class QuotaHistoryTests
{
    private static readonly TimeSpan Longest = TimeSpan.FromHours(1);
    private static readonly QuotaLimits Limits = new QuotaLimits { MessagesPerHour = 1 }.Or(QuotaLimits.Defaults);
    [Test]
    public async Task A_long_transaction_counts_from_its_end_after_a_restart_as_it_did_before()
    {
        // She opens a transaction, keeps it going 50 minutes (within Smtp.SessionTimeoutSeconds), then finishes it: the
        // running ledger charges it then. Counted from its start after a restart, it left the hour window 50 minutes
        // early, and her hourly quota came back at once.
        var clock = new ManualClock(Records.Base);
        var running = new QuotaLedger(clock);
        Assert.That(running.TryReserveMessage(1001, Limits, out _), Is.True);
        clock.Advance(TimeSpan.FromMinutes(50));
        running.Settle(1001, 1, 0, delivered: true, deliveredRecipients: 2);
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        await store.RecordTransactionAsync(
            Records.Transaction("long", Records.Base) with { Duration = TimeSpan.FromMinutes(50) }, CancellationToken.None);

        clock.Advance(TimeSpan.FromMinutes(40));
        var restored = new QuotaLedger(clock);
        var counted = await QuotaHistory.RestoreAsync(store, restored, clock.Now, Longest, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(counted, Is.EqualTo(1));
            Assert.That(restored.Usage(1001), Is.EqualTo(running.Usage(1001)));
            Assert.That(restored.Usage(1001).MessagesHour, Is.EqualTo(1), "it ended 40 minutes ago");
            Assert.That(restored.TryReserveMessage(1001, Limits, out var exceeded), Is.False);
            Assert.That(exceeded?.Kind, Is.EqualTo(RefusalKind.MessagesPerHour));
        });
    }

    [Test]
    public async Task The_day_window_takes_rows_that_started_before_it_and_ended_inside_it_and_only_what_counts_as_sent()
    {
        var now = Records.Base.AddDays(3);
        var dayStart = now - QuotaHistory.Window;
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        TransactionEvent Row(string id, DateTimeOffset started, TimeSpan duration, TransactionOutcome outcome) =>
            Records.Transaction(id, started, outcome: outcome, recipients: 1) with { Duration = duration };
        foreach (var row in new[]
        {
            Row("ended-inside", dayStart - TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(40), TransactionOutcome.Delivered),
            Row("ended-before", dayStart - TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(20), TransactionOutcome.Delivered),
            Row("held", now - TimeSpan.FromHours(2), TimeSpan.FromSeconds(3), TransactionOutcome.Held),
            // Its outcome was never written: counted as late as it could have ended (the longest transaction), not after now.
            Row("pending-left-by-a-crash", now - TimeSpan.FromHours(3), TimeSpan.FromSeconds(2), TransactionOutcome.Pending),
            Row("pending-just-before-the-restart", now - TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(2), TransactionOutcome.Pending),
            Row("pending-90-minutes-ago", now - TimeSpan.FromMinutes(90), TimeSpan.FromSeconds(2), TransactionOutcome.Pending),
            Row("rejected", now - TimeSpan.FromHours(4), TimeSpan.FromSeconds(3), TransactionOutcome.Rejected),
            Row("deferred", now - TimeSpan.FromHours(5), TimeSpan.FromSeconds(3), TransactionOutcome.Deferred),
        })
        {
            await store.RecordTransactionAsync(row, CancellationToken.None);
        }

        var ledger = new QuotaLedger(new ManualClock(now));
        var counted = await QuotaHistory.RestoreAsync(store, ledger, now, Longest, CancellationToken.None);

        Assert.That(counted, Is.EqualTo(5), "ended-inside, held and the three pending");
        Assert.That(ledger.Usage(1001), Is.EqualTo((2, 5, 2, 5)), "the pending ones of 10 and 90 minutes ago in the hour: the second could have ended 30 minutes ago");
    }
}
