using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Hold;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hold;

[TestFixture]
public sealed class HoldAccountingTests
{
    private static readonly DateTimeOffset HeldAt = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);

    private sealed class Recorder : ITransactionRecorder
    {
        public List<TransactionEvent> Events { get; } = [];

        public void Record(TransactionEvent transaction) => Events.Add(transaction);
    }

    [Test]
    public async Task A_released_message_is_not_charged_again_and_its_held_row_becomes_the_delivery_at_its_hold_time()
    {
        // Held: charged by the policy as it was held (MailPolicyTests); the release must not charge it a second time.
        var clock = new ManualClock(HeldAt);
        var ledger = new QuotaLedger(clock);
        var store = new MemoryStore();
        var recorder = new Recorder();
        var id = Guid.CreateVersion7().ToString("N");
        ledger.AddDelivered(1001, HeldAt, 2);
        await store.RecordTransactionAsync(new TransactionEvent(id, HeldAt, 1001, "alice", "a@x", 2, 10, "192.0.2.25:25", "", "250 2.0.0 held for review as " + id, TimeSpan.Zero)
        {
            Outcome = TransactionOutcome.Held,
        }, CancellationToken.None);

        clock.Advance(TimeSpan.FromMinutes(30));
        var held = new HeldMessage(id, 1001, "alice", "a@x", ["b@y", "c@z"], "192.0.2.25:25", "original-destination", "scan", "score 9", 9, [], HeldAt, 10, HoldState.Delivered)
        {
            ReleasedAt = clock.Now - TimeSpan.FromSeconds(2),
        };
        await new HoldAccounting(store, recorder, clock).DeliveredAsync(held, new DeliveryOutcome(DeliveryKind.Delivered, "250 2.0.0 Ok: queued as 7", "192.0.2.25:25"), CancellationToken.None);

        var usage = ledger.Usage(1001);
        Assert.That((usage.MessagesHour, usage.RecipientsHour), Is.EqualTo((1, 2)), "counted once, when it was held");
        var row = store.Transactions.Single();
        Assert.Multiple(() =>
        {
            Assert.That(row.Id, Is.EqualTo(id));
            Assert.That(row.Outcome, Is.EqualTo(TransactionOutcome.Delivered));
            Assert.That(row.Started, Is.EqualTo(HeldAt), "the quota windows rebuilt at start see it where the running daemon did");
            Assert.That(TransactionEvent.CountsAsSent(row.Outcome), Is.True);
            Assert.That(row.Reply, Is.EqualTo("released from hold: 250 2.0.0 Ok: queued as 7"));
            Assert.That(row.Duration, Is.EqualTo(TimeSpan.FromSeconds(2)));
            Assert.That(recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Delivered));
        });
    }
}
