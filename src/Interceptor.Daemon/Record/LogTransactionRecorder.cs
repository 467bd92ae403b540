using Interceptor.Core.Events;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Record;

/// <summary>One structured log line per transaction, naming the user: what an admin greps for first.</summary>
public sealed class LogTransactionRecorder(ILogger logger) : ITransactionRecorder
{
    private static readonly EventId TransactionEventId = new(10, "Transaction");

    public void Record(TransactionEvent transaction)
    {
        if (transaction.Unsent is not null)
        {
            // Ended before DATA: a client can make thousands a second. The store tallies them and logs one line per user,
            // kind and minute when it writes the tally.
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
