using Interceptor.Core.Events;
using Interceptor.Core.Policy;

namespace Interceptor.Store;

/// <summary>
/// What the admin verbs (`status`, `users`, `log`) read from the store: per-user totals added up where the rows are
/// (in SQL, never by loading them), the newest rows of one kind, and the store's health. One implementation,
/// <see cref="SqliteStateStore"/>, so the totals an admin sees are the ones the store computes, with no second copy
/// of the aggregation to keep in step.
/// </summary>
public interface IActivityReadModel
{
    /// <summary>Commits, last commit and last failure, without touching the disk.</summary>
    StoreHealth Health { get; }

    /// <summary>
    /// Per-user totals of transactions, tallies and policy refusals at or after <paramref name="since"/>. Ordered by
    /// messages sent (delivered + pending), then by trouble (refused, rejected, deferred), then uid.
    /// </summary>
    /// <exception cref="StoreUnavailableException">The store cannot be read.</exception>
    Task<IReadOnlyList<UserActivity>> SummarizeUsersAsync(DateTimeOffset since, CancellationToken cancellationToken);

    /// <summary>Transactions started at or after <paramref name="since"/>, newest first, optionally of one user.</summary>
    Task<IReadOnlyList<TransactionEvent>> LoadTransactionsAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken);

    /// <summary>Tallies of intervals that ended at or after <paramref name="since"/>, newest first, optionally of one user.</summary>
    Task<IReadOnlyList<TallyEntry>> LoadTalliesAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken);
}
