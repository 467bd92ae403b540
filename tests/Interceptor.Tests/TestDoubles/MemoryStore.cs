using System.Collections.Concurrent;
using Interceptor.Core.Events;
using Interceptor.Core.Policy;

namespace Interceptor.Tests.TestDoubles;

/// <summary>
/// The one in-memory store of the unit tests, with the IStateStore contract (a transaction's later write replaces its
/// row; loads newest first, since inclusive). Records every write in order, can be made to fail (<see cref="Broken"/>)
/// and can hold back deferred outcomes (<see cref="HeldOutcomes"/>).
/// </summary>
internal sealed class MemoryStore : IStateStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, TransactionEvent> _transactions = [];
    private readonly List<TransactionEvent> _transactionWrites = [];
    private readonly List<PolicyRefusal> _refusals = [];
    private readonly List<TallyEntry> _tallies = [];
    private readonly Dictionary<uint, Suspension> _suspensions = [];

    /// <summary>When set, every read and write fails as a broken disk does.</summary>
    public bool Broken { get; set; }

    /// <summary>When set, deferred outcomes are committed only when the test completes this.</summary>
    public TaskCompletionSource? HeldOutcomes { get; set; }

    /// <summary>Every transaction write in order: a relayed message's Pending row, then its outcome.</summary>
    public IReadOnlyList<TransactionEvent> TransactionWrites => Snapshot(_transactionWrites);

    /// <summary>The rows: each transaction as last written.</summary>
    public IReadOnlyList<TransactionEvent> Transactions
    {
        get
        {
            lock (_lock)
            {
                return [.. _transactions.Values];
            }
        }
    }

    public IReadOnlyList<PolicyRefusal> Refusals => Snapshot(_refusals);

    public IReadOnlyList<TallyEntry> Tallies => Snapshot(_tallies);

    public IReadOnlyCollection<Suspension> Suspensions
    {
        get
        {
            lock (_lock)
            {
                return [.. _suspensions.Values];
            }
        }
    }

    /// <summary>When set, Pending rows are committed only when the test completes this (and fail if <see cref="Broken"/> by then).</summary>
    public TaskCompletionSource? HeldPending { get; set; }

    public Task RecordTransactionAsync(TransactionEvent transaction, CancellationToken cancellationToken) =>
        transaction.Outcome == TransactionOutcome.Pending && HeldPending is { } held
            ? WriteWhenReleasedAsync(held.Task, transaction)
            : Write(() => Add(transaction));

    private async Task WriteWhenReleasedAsync(Task released, TransactionEvent transaction)
    {
        await released;
        await Write(() => Add(transaction));
    }

    private void Add(TransactionEvent transaction)
    {
        // As the SQL upsert (WriteStatements): a row keeps its first start and uid, and its end never moves earlier.
        _transactions[transaction.Id] = _transactions.TryGetValue(transaction.Id, out var row)
            ? transaction with
            {
                Uid = row.Uid,
                Started = row.Started,
                Duration = TimeSpan.FromTicks(Math.Max(row.Duration.Ticks, (transaction.Started + transaction.Duration - row.Started).Ticks)),
            }
            : transaction;
        _transactionWrites.Add(transaction);
    }

    public Task RecordOutcomeDeferred(TransactionEvent final)
    {
        if (HeldOutcomes is { } held)
        {
            return held.Task;
        }

        // Like the real store, a deferred write reports failure through its task, never by throwing.
        try
        {
            return RecordTransactionAsync(final, CancellationToken.None);
        }
        catch (StoreUnavailableException e)
        {
            return Task.FromException(e);
        }
    }

    public Task RecordRefusalAsync(PolicyRefusal refusal, CancellationToken cancellationToken) => Write(() => _refusals.Add(refusal));

    public Task SaveSuspensionAsync(Suspension suspension, CancellationToken cancellationToken) => Write(() => _suspensions[suspension.Uid] = suspension);

    public Task<bool> RemoveSuspensionAsync(uint uid, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult(_suspensions.Remove(uid));
        }
    }

    public Task<IReadOnlyList<Suspension>> LoadSuspensionsAsync(CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<Suspension>>([.. _suspensions.Values.OrderBy(s => s.Uid)]);
        }
    }

    public Task<IReadOnlyList<QuotaCharge>> LoadChargesAsync(DateTimeOffset since, DateTimeOffset endedSince, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<QuotaCharge>>([.. _transactions.Values
                .Where(t => t.Started >= since && TransactionEvent.CountsAsSent(t.Outcome)
                    && (t.Outcome == TransactionOutcome.Pending || t.Started + t.Duration >= endedSince))
                .Select(t => new QuotaCharge(t.Uid, t.Started, t.Duration, t.RecipientCount, t.Outcome))]);
        }
    }

    public Task<IReadOnlyList<TransactionEvent>> LoadTransactionsAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TransactionEvent>>([.. _transactions.Values
                .Where(t => t.Started >= since && (uid is null || t.Uid == uid))
                .OrderByDescending(t => t.Started)
                .Take(limit)]);
        }
    }

    public Task<IReadOnlyList<PolicyRefusal>> LoadRefusalsAsync(DateTimeOffset since, uint? uid, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<PolicyRefusal>>([.. _refusals
                .Where(r => r.Time >= since && (uid is null || r.Uid == uid))
                .OrderByDescending(r => r.Time)]);
        }
    }

    /// <summary>Every prune asked for: (refusals and tallies before, transactions before).</summary>
    public ConcurrentQueue<(DateTimeOffset Before, DateTimeOffset TransactionsBefore)> Prunes { get; } = new();

    public Task PruneAsync(DateTimeOffset before, DateTimeOffset transactionsBefore, CancellationToken cancellationToken)
    {
        Prunes.Enqueue((before, transactionsBefore));
        return Task.CompletedTask;
    }

    /// <summary>Never throws, as the contract says, even when <see cref="Broken"/>: the real store counts in memory.</summary>
    public void CountTally(TallyEntry entry)
    {
        lock (_lock)
        {
            _tallies.Add(entry);
        }
    }

    public Task<IReadOnlyList<TallyEntry>> LoadTalliesAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        Check();
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<TallyEntry>>([.. _tallies
                .Where(t => t.Period + TallyEntry.Interval >= since && (uid is null || t.Uid == uid))
                .Reverse()
                .Take(limit)]);
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private IReadOnlyList<T> Snapshot<T>(List<T> list)
    {
        lock (_lock)
        {
            return [.. list];
        }
    }

    private Task Write(Action action)
    {
        Check();
        lock (_lock)
        {
            action();
        }

        return Task.CompletedTask;
    }

    private void Check()
    {
        if (Broken)
        {
            throw new StoreUnavailableException("state.db: disk I/O error (test)");
        }
    }
}
