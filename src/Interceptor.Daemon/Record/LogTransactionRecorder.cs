using Interceptor.Core.Events;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Record;

/// <summary>One structured log line per transaction, naming the user: what an admin greps for first.</summary>
public sealed class LogTransactionRecorder(ILogger logger) : ITransactionRecorder
{
    private static readonly EventId TransactionEventId = new(10, "Transaction");

    public void Record(TransactionEvent transaction)
    {
        if (transaction.SubordinateUid is { } subordinate)
        {
            // The owner is uid/user (whom the abuse desk calls); the real sub-UID is named too, so nothing is hidden.
            logger.LogInformation(
                TransactionEventId,
                "transaction {Id} uid={Uid} user={User} subuid={SubUid} from=<{Sender}> recipients={Recipients} size={SizeBytes} dst={OriginalDestination} upstream={Upstream} reply=\"{Reply}\" duration_ms={DurationMs}",
                transaction.Id,
                transaction.Uid,
                transaction.User,
                subordinate,
                transaction.Sender,
                transaction.RecipientCount,
                transaction.SizeBytes,
                transaction.OriginalDestination,
                transaction.Upstream,
                transaction.Reply,
                (long)transaction.Duration.TotalMilliseconds);
            return;
        }

        logger.LogInformation(
            TransactionEventId,
            "transaction {Id} uid={Uid} user={User} from=<{Sender}> recipients={Recipients} size={SizeBytes} dst={OriginalDestination} upstream={Upstream} reply=\"{Reply}\" duration_ms={DurationMs}",
            transaction.Id,
            transaction.Uid,
            transaction.User,
            transaction.Sender,
            transaction.RecipientCount,
            transaction.SizeBytes,
            transaction.OriginalDestination,
            transaction.Upstream,
            transaction.Reply,
            (long)transaction.Duration.TotalMilliseconds);
    }
}
