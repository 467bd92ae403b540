using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Store;

namespace Interceptor.Daemon.Control;

/// <summary>
/// Per-user totals since a point in time. The SQLite store adds them up in SQL; any other <see cref="IStateStore"/>
/// (tests, a future store) is summed here from its transactions and refusals, with the same ordering.
/// </summary>
internal static class ActivitySummary
{
    /// <summary>Bounds the fallback's memory; the SQLite store has no such limit because it never loads the rows.</summary>
    internal const int MaxRowsWithoutSql = 200_000;

    /// <exception cref="StoreUnavailableException">The store cannot be read.</exception>
    public static async Task<IReadOnlyList<UserActivity>> SummarizeAsync(IStateStore store, DateTimeOffset since, CancellationToken cancellationToken)
    {
        if (store is SqliteStateStore sqlite)
        {
            return await sqlite.SummarizeUsersAsync(since, cancellationToken);
        }

        var transactions = await store.LoadTransactionsAsync(since, null, MaxRowsWithoutSql, cancellationToken);
        var refusals = await store.LoadRefusalsAsync(since, null, cancellationToken);
        return Aggregate(transactions, refusals);
    }

    /// <summary>Sums rows the way the store's SQL does: top senders first, then the most trouble, then uid.</summary>
    internal static IReadOnlyList<UserActivity> Aggregate(IEnumerable<TransactionEvent> transactions, IEnumerable<PolicyRefusal> refusals)
    {
        var users = new Dictionary<uint, UserActivity>();
        UserActivity Get(uint uid, string user, DateTimeOffset at)
        {
            if (!users.TryGetValue(uid, out var known))
            {
                return new UserActivity(uid, user, 0, 0, 0, 0, 0, 0, 0, 0, at);
            }

            // The newest record names the user (names can change; the uid is the key).
            return at > known.LastActivity ? known with { User = user, LastActivity = at } : known;
        }

        foreach (var t in transactions)
        {
            var u = Get(t.Uid, t.User, t.Started);
            users[t.Uid] = t.Outcome switch
            {
                TransactionOutcome.Delivered => u with
                {
                    Delivered = u.Delivered + 1,
                    DeliveredRecipients = u.DeliveredRecipients + t.RecipientCount,
                    BytesDelivered = u.BytesDelivered + t.SizeBytes,
                },
                TransactionOutcome.Pending or TransactionOutcome.Unknown => u with { Pending = u.Pending + 1 },
                TransactionOutcome.Deferred => u with { Deferred = u.Deferred + 1 },
                TransactionOutcome.Rejected => u with { Rejected = u.Rejected + 1 },
                _ => u with { Refused = u.Refused + 1 },
            };
        }

        foreach (var r in refusals)
        {
            var u = Get(r.Uid, r.User, r.Time);
            users[r.Uid] = u with { PolicyRefusals = u.PolicyRefusals + 1 };
        }

        return [.. users.Values
            .OrderByDescending(u => u.Delivered + u.Pending)
            .ThenByDescending(u => u.PolicyRefusals + u.Refused + u.Rejected + u.Deferred)
            .ThenBy(u => u.Uid)];
    }
}
