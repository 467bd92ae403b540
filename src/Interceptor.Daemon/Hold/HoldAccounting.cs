using Interceptor.Core.Events;
using Interceptor.Core.Policy;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// A released message delivered: its transaction's row (held until now) becomes the delivery, and the transaction line
/// says so (the same line and metrics as a relayed message). The quotas are not charged again: they counted the message
/// when it was held (<see cref="TransactionEvent.CountsAsSent"/>). For the store the event ends at the hold (no duration):
/// the row keeps its start and uid and is made to end where the event does (the store's upsert), so it ends when the
/// quotas charged it, where the windows rebuilt at start count it (<see cref="QuotaHistory"/>), whether it was Held or
/// still Pending (the Held outcome's write lost), or is written anew when it is gone. The release's own time, which
/// retries may stretch to Hold.ReleaseRetryHours, is in its transaction line only.
/// </summary>
public sealed class HoldAccounting(IStateStore store, ITransactionRecorder recorder, TimeProvider time)
{
    public async Task DeliveredAsync(HeldMessage message, DeliveryOutcome outcome, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(message);
        var now = time.GetUtcNow();
        var transaction = new TransactionEvent(
            message.Id, message.HeldAt, message.Uid, message.User, message.Sender, message.Recipients.Count, message.SizeBytes,
            message.OriginalDestination, outcome.Upstream, "released from hold: " + outcome.Result, now - (message.ReleasedAt ?? now))
        {
            Outcome = TransactionOutcome.Delivered,
        };
        recorder.Record(transaction);
        await store.RecordTransactionAsync(transaction with { Duration = TimeSpan.Zero }, token);
    }
}
