using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Hold;
using Interceptor.Tests.Store;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hold;

[TestFixture]
public sealed class HoldAccountingTests
{
    private static readonly DateTimeOffset MailAt = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan HoldSession = TimeSpan.FromMinutes(40);
    private static readonly DateTimeOffset HeldAt = MailAt + HoldSession;

    private sealed class Recorder : ITransactionRecorder
    {
        public List<TransactionEvent> Events { get; } = [];

        public void Record(TransactionEvent transaction) => Events.Add(transaction);
    }

    [Test]
    public async Task A_released_message_is_not_charged_again_and_its_held_row_becomes_the_delivery_still_ending_when_it_was_held()
    {
        // Held: charged by the policy as it was held (MailPolicyTests); the release must not charge it a second time, and a
        // restart must count it where the running ledger did, at the hold, not at the MAIL 40 minutes before it.
        var clock = new ManualClock(HeldAt);
        var ledger = new QuotaLedger(clock);
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        var recorder = new Recorder();
        var id = Guid.CreateVersion7().ToString("N");
        ledger.AddDelivered(1001, HeldAt, 2);
        var pending = new TransactionEvent(id, MailAt, 1001, "alice", "a@x", 2, 10, "192.0.2.25:25", "", "", TimeSpan.Zero)
        {
            Outcome = TransactionOutcome.Pending,
        };
        await store.RecordTransactionAsync(pending, CancellationToken.None);
        await store.RecordTransactionAsync(
            pending with { Outcome = TransactionOutcome.Held, Reply = "250 2.0.0 held for review as " + id, Duration = HoldSession }, CancellationToken.None);

        clock.Advance(TimeSpan.FromMinutes(30));
        var held = new HeldMessage(id, 1001, "alice", "a@x", ["b@y", "c@z"], "192.0.2.25:25", "original-destination", "scan", "score 9", 9, [], HeldAt, 10, HoldState.Delivered)
        {
            ReleasedAt = clock.Now - TimeSpan.FromSeconds(2),
        };
        await new HoldAccounting(store, recorder, clock).DeliveredAsync(held, new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 Ok: queued as 7", "192.0.2.25:25"), CancellationToken.None);

        var usage = ledger.Usage(1001);
        Assert.That((usage.MessagesHour, usage.RecipientsHour), Is.EqualTo((1, 2)), "counted once, when it was held");
        var row = (await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Single();
        var restored = new QuotaLedger(clock);
        await QuotaHistory.RestoreAsync(store, restored, clock.Now, TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(row.Id, Is.EqualTo(id));
            Assert.That(row.Outcome, Is.EqualTo(TransactionOutcome.Delivered));
            Assert.That(row.Started, Is.EqualTo(MailAt), "the row keeps its start");
            Assert.That(row.Started + row.Duration, Is.EqualTo(HeldAt), "and the hold's duration, so it ends where the quotas charged it");
            Assert.That(restored.Usage(1001), Is.EqualTo(ledger.Usage(1001)), "the windows rebuilt at start count it where the running daemon did");
            Assert.That(TransactionEvent.CountsAsSent(row.Outcome), Is.True);
            Assert.That(row.Reply, Is.EqualTo("released from hold: 250 2.0.0 Ok: queued as 7"));
            Assert.That(recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Delivered));
            Assert.That(recorder.Events.Single().Duration, Is.EqualTo(TimeSpan.FromSeconds(2)), "the transaction line gives the release's own time");
        });
    }

    [Test]
    public async Task A_release_over_a_row_whose_held_outcome_was_never_written_still_ends_no_earlier_than_the_hold()
    {
        // The Held outcome's deferred write failed: the row is still Pending, with MAIL's start and DATA's duration. The
        // release's event starts at the hold; the row keeps its start, so it must end at the event's end, not MAIL + 2 s.
        var clock = new ManualClock(HeldAt);
        var ledger = new QuotaLedger(clock);
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        var id = Guid.CreateVersion7().ToString("N");
        ledger.AddDelivered(1001, HeldAt, 1);
        await store.RecordTransactionAsync(
            new TransactionEvent(id, MailAt, 1001, "alice", "a@x", 1, 10, "192.0.2.25:25", "", "", TimeSpan.FromSeconds(5)) { Outcome = TransactionOutcome.Pending },
            CancellationToken.None);

        clock.Advance(TimeSpan.FromMinutes(30));
        var held = new HeldMessage(id, 1001, "alice", "a@x", ["b@y"], "192.0.2.25:25", "original-destination", "scan", "score 9", 9, [], HeldAt, 10, HoldState.Delivered)
        {
            ReleasedAt = clock.Now - TimeSpan.FromSeconds(2),
        };
        await new HoldAccounting(store, new Recorder(), clock).DeliveredAsync(held, new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 Ok", "192.0.2.25:25"), CancellationToken.None);

        var row = (await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Single();
        var restored = new QuotaLedger(clock);
        await QuotaHistory.RestoreAsync(store, restored, clock.Now, TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(row.Started, Is.EqualTo(MailAt));
            Assert.That(row.Started + row.Duration, Is.EqualTo(HeldAt), "at the hold, where the quotas charged it, not MAIL + the release's 2 s");
            Assert.That(restored.Usage(1001), Is.EqualTo(ledger.Usage(1001)));
        });
    }

    [Test]
    public async Task A_release_never_moves_a_rows_end_before_the_held_outcomes_own()
    {
        // The hold time is stamped before the hold's record is written and the message charged: the Held outcome's end is
        // later, and a release must not move the row's end back to the stamp, out of the windows sooner after a restart.
        var chargedAt = HeldAt + TimeSpan.FromSeconds(3);
        var clock = new ManualClock(chargedAt);
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        var id = Guid.CreateVersion7().ToString("N");
        var pending = new TransactionEvent(id, MailAt, 1001, "alice", "a@x", 1, 10, "192.0.2.25:25", "", "", TimeSpan.FromSeconds(5))
        {
            Outcome = TransactionOutcome.Pending,
        };
        await store.RecordTransactionAsync(pending, CancellationToken.None);
        await store.RecordTransactionAsync(pending with { Outcome = TransactionOutcome.Held, Duration = chargedAt - MailAt }, CancellationToken.None);

        clock.Advance(TimeSpan.FromMinutes(30));
        var held = new HeldMessage(id, 1001, "alice", "a@x", ["b@y"], "192.0.2.25:25", "original-destination", "scan", "score 9", 9, [], HeldAt, 10, HoldState.Delivered)
        {
            ReleasedAt = clock.Now - TimeSpan.FromSeconds(2),
        };
        await new HoldAccounting(store, new Recorder(), clock).DeliveredAsync(held, new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 Ok", "192.0.2.25:25"), CancellationToken.None);

        var row = (await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None)).Single();
        Assert.That(row.Started + row.Duration, Is.EqualTo(chargedAt));
    }
}
