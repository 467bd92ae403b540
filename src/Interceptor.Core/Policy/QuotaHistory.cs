using Interceptor.Core.Events;

namespace Interceptor.Core.Policy;

/// <summary>
/// The quota windows across a restart: the last day's deliveries in the journal are counted again, each at the instant
/// the running ledger counted it. That is a transaction's end (<see cref="QuotaCharge.Ended"/>): the ledger charges
/// a delivery when it settles. Counted at its start instead, a message whose transaction a customer kept open for up to
/// Smtp.SessionTimeoutSeconds left the windows that much sooner after a restart, and her quota came back early.
/// </summary>
public static class QuotaHistory
{
    /// <summary>The longest quota window: what a restart must count again.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromDays(1);

    /// <summary>
    /// The earliest start of a row that may still count: the window, and before it the longest a transaction can last
    /// (<see cref="Options.InterceptorOptions.LongestTransaction"/>). Nothing that starts later may be pruned for space
    /// while the quotas are kept.
    /// </summary>
    public static DateTimeOffset OldestCountedStart(DateTimeOffset now, TimeSpan longestTransaction) => now - Window - longestTransaction;

    /// <summary>Counts the window's deliveries from <paramref name="store"/> into <paramref name="ledger"/>; returns how many.</summary>
    public static async Task<int> RestoreAsync(
        IStateStore store, QuotaLedger ledger, DateTimeOffset now, TimeSpan longestTransaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(ledger);
        var rows = await store.LoadChargesAsync(OldestCountedStart(now, longestTransaction), now - Window, cancellationToken);

        // The ledger takes deliveries fastest in the order they were counted. Every row the store gives counts inside the
        // day: it ended in it, or is Pending and counts at its start plus the longest transaction, no earlier than the day.
        var counted = rows
            .Select(row => (row.Uid, At: CountedAt(row, now, longestTransaction), row.Recipients))
            .OrderBy(row => row.At)
            .ToList();
        foreach (var (uid, at, recipients) in counted)
        {
            ledger.AddDelivered(uid, at, recipients);
        }

        return counted.Count;
    }

    /// <summary>
    /// Where a row counts: at its end; a Pending row, whose outcome was never written (the daemon died, or the write
    /// failed), as late as its transaction could have ended: its duration only reached DATA, and the rest of the
    /// transaction is the client's and the upstream's to stretch. Never after now (a clock set back): a delivery
    /// counted in the future would keep every later one out of order in the ledger.
    /// </summary>
    private static DateTimeOffset CountedAt(QuotaCharge row, DateTimeOffset now, TimeSpan longestTransaction)
    {
        var at = row.Outcome == TransactionOutcome.Pending ? row.Started + longestTransaction : row.Ended;
        return at < now ? at : now;
    }
}
