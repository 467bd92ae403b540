using Interceptor.Core.Events;
using Interceptor.Core.Policy;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// A held message counts toward its user's quotas when it is delivered after its release, not when it was held: the
/// ledger is charged then, the transaction's row (held until now) is replaced by the delivery, and the transaction line
/// says so (the same line and metrics as a relayed message).
/// </summary>
public sealed class HoldAccounting(QuotaLedger ledger, IStateStore store, ITransactionRecorder recorder, TimeProvider time)
{
    public async Task DeliveredAsync(HeldMessage message, DeliveryOutcome outcome, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(message);
        var now = time.GetUtcNow();
        var transaction = new TransactionEvent(
            message.Id, now, message.Uid, message.User, message.Sender, message.Recipients.Count, message.SizeBytes,
            message.OriginalDestination, outcome.Upstream, "released from hold: " + outcome.Result, now - (message.ReleasedAt ?? now))
        {
            Outcome = TransactionOutcome.Delivered,
        };
        ledger.AddDelivered(message.Uid, now, message.Recipients.Count);
        recorder.Record(transaction);
        await store.RecordTransactionAsync(transaction, token);
    }
}
