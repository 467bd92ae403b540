using Interceptor.Core.Events;

namespace Interceptor.Core.Policy;

/// <summary>
/// Many like events of one user, counted instead of stored one row each: transactions that ended before DATA
/// ("Unsent.Reset", ...) and connection-cap refusals ("Refusal.Connections"). One entry per user, kind and minute.
/// </summary>
/// <param name="Period">Start of the minute the events fell in.</param>
/// <param name="Kind">A fixed name, never text from the client: <see cref="UnsentKindName"/> or <see cref="RefusalKindName"/>.</param>
/// <param name="Outcome">The transactions' outcome (Refused, Deferred, Rejected); empty for refusals.</param>
/// <param name="Detail">The last reply or detail, for the admin (bounded).</param>
public sealed record TallyEntry(
    DateTimeOffset Period,
    uint Uid,
    string User,
    string Kind,
    string Outcome,
    long Count,
    DateTimeOffset First,
    DateTimeOffset Last,
    string Detail)
{
    /// <summary>Events are counted per this interval.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    /// <summary>Longest detail kept (a reply can quote the client).</summary>
    public const int MaxDetail = 200;

    public static string UnsentKindName(UnsentKind kind) => "Unsent." + kind;

    public static string RefusalKindName(RefusalKind kind) => "Refusal." + kind;

    /// <summary>True for a tally of transactions (as opposed to policy refusals).</summary>
    public bool IsUnsent => Kind.StartsWith("Unsent.", StringComparison.Ordinal);

    /// <summary>The start of the interval <paramref name="at"/> falls in.</summary>
    public static DateTimeOffset PeriodOf(DateTimeOffset at) =>
        new(at.UtcTicks - (at.UtcTicks % Interval.Ticks), TimeSpan.Zero);

    /// <summary>One event: a count of one in its interval.</summary>
    public static TallyEntry One(DateTimeOffset at, uint uid, string user, string kind, string outcome, string detail) =>
        new(PeriodOf(at), uid, user, kind, outcome, 1, at, at, detail.Length > MaxDetail ? detail[..MaxDetail] : detail);

    /// <summary>What an admin reads: "1234 transactions ended before DATA (Unsent.Reset)".</summary>
    public string Describe() => IsUnsent
        ? $"{Count} transaction{(Count == 1 ? "" : "s")} ended before DATA ({Kind}, {Outcome}); last reply: {Detail}"
        : $"{Count} {Kind} refusal{(Count == 1 ? "" : "s")} ({Detail})";
}

/// <summary>
/// Counts tally events in memory until they are written (the store flushes them every few seconds and before it is
/// read): a flood of a million events a minute costs one row update per user, kind and minute. Thread-safe.
/// </summary>
public sealed class TallyBook
{
    private readonly Lock _lock = new();
    private Dictionary<(uint Uid, string Kind, string Outcome, DateTimeOffset Period), TallyEntry> _pending = [];

    public bool IsEmpty
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count == 0;
            }
        }
    }

    public void Add(TallyEntry entry)
    {
        var key = (entry.Uid, entry.Kind, entry.Outcome, entry.Period);
        lock (_lock)
        {
            _pending[key] = _pending.TryGetValue(key, out var known) ? Merge(known, entry) : entry;
        }
    }

    /// <summary>Takes everything counted so far; the book starts empty again.</summary>
    public IReadOnlyList<TallyEntry> Drain()
    {
        Dictionary<(uint, string, string, DateTimeOffset), TallyEntry> taken;
        lock (_lock)
        {
            if (_pending.Count == 0)
            {
                return [];
            }

            taken = _pending;
            _pending = [];
        }

        return [.. taken.Values.OrderBy(e => e.Period).ThenBy(e => e.Uid).ThenBy(e => e.Kind, StringComparer.Ordinal)];
    }

    /// <summary>Two counts of the same user, kind and interval as one: counts add up, the later detail wins.</summary>
    public static TallyEntry Merge(TallyEntry earlier, TallyEntry later) => earlier with
    {
        Count = earlier.Count + later.Count,
        First = earlier.First < later.First ? earlier.First : later.First,
        Last = earlier.Last > later.Last ? earlier.Last : later.Last,
        Detail = later.Last >= earlier.Last ? later.Detail : earlier.Detail,
        User = later.Last >= earlier.Last ? later.User : earlier.User,
    };
}
