using Interceptor.Core.Events;

namespace Interceptor.Core.Policy;

/// <summary>The store could not be read or written; mail is refused (451) until it recovers: fail closed.</summary>
public class StoreUnavailableException : Exception
{
    public StoreUnavailableException()
    {
    }

    public StoreUnavailableException(string message)
        : base(message)
    {
    }

    public StoreUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Durable state: every transaction, policy refusals and suspensions. A write task completes only once the
/// data is on disk; every failure is a <see cref="StoreUnavailableException"/>.
/// </summary>
public interface IStateStore : IAsyncDisposable
{
    /// <summary>Inserts or replaces the transaction with this Id (Pending first, then its outcome).</summary>
    Task RecordTransactionAsync(TransactionEvent transaction, CancellationToken cancellationToken);

    /// <summary>
    /// Records a transaction's outcome without making its session wait: committed with the next batch of writes, or
    /// within a few tens of milliseconds. Safe because its Pending row is already on disk and counts as sent until the
    /// outcome replaces it; reads see deferred writes. The task reports the commit (or its failure) to whoever looks.
    /// </summary>
    Task RecordOutcomeDeferred(TransactionEvent final);

    Task RecordRefusalAsync(PolicyRefusal refusal, CancellationToken cancellationToken);

    /// <summary>
    /// Counts one event of a flood-prone kind (a transaction that ended before DATA, a connection-cap refusal) in memory:
    /// written as one row per user, kind and minute within seconds, and before any read. Never blocks, never throws.
    /// </summary>
    void CountTally(TallyEntry entry);

    /// <summary>Tallies of intervals that ended at or after <paramref name="since"/>, newest first, optionally of one user.</summary>
    Task<IReadOnlyList<TallyEntry>> LoadTalliesAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken);

    Task SaveSuspensionAsync(Suspension suspension, CancellationToken cancellationToken);

    /// <summary>False when the user was not suspended.</summary>
    Task<bool> RemoveSuspensionAsync(uint uid, CancellationToken cancellationToken);

    Task<IReadOnlyList<Suspension>> LoadSuspensionsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// The rows that count as sent, started at or after <paramref name="since"/> and ended at or after
    /// <paramref name="endedSince"/> (Pending rows whatever their recorded end: it only reaches DATA), in no particular order.
    /// </summary>
    Task<IReadOnlyList<QuotaCharge>> LoadChargesAsync(DateTimeOffset since, DateTimeOffset endedSince, CancellationToken cancellationToken);

    /// <summary>Transactions started at or after <paramref name="since"/>, newest first, optionally of one user.</summary>
    Task<IReadOnlyList<TransactionEvent>> LoadTransactionsAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken);

    Task<IReadOnlyList<PolicyRefusal>> LoadRefusalsAsync(DateTimeOffset since, uint? uid, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes refusals and tallies older than <paramref name="before"/> (retention), and transactions started before
    /// <paramref name="transactionsBefore"/>: the quotas may still count a long transaction's row after the retention's.
    /// </summary>
    Task PruneAsync(DateTimeOffset before, DateTimeOffset transactionsBefore, CancellationToken cancellationToken);
}
