using Interceptor.Core.Events;
using Interceptor.Core.Options;

namespace Interceptor.Core.Policy;

/// <summary>
/// Decides when a user is suspended without an admin: too many quota refusals in a window (a script
/// hammering against its limits), or an upstream rejection/deferral ratio above a threshold once enough
/// transactions were seen (spam that the big providers refuse: what cPanel calls the failed/deferred limit).
/// </summary>
public sealed class AutoSuspensionRules(SuspensionOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, SlidingCount> _refusals = [];
    private readonly Dictionary<uint, SlidingCount> _outcomes = [];
    private readonly Dictionary<uint, SlidingCount> _unsent = [];

    /// <summary>Counts a policy refusal; returns the reason to suspend, or null.</summary>
    public string? ObserveRefusal(uint uid, DateTimeOffset at)
    {
        if (options.RefusalLimit <= 0)
        {
            return null;
        }

        lock (_lock)
        {
            var window = Window(_refusals, uid, options.RefusalWindow);
            window.Add(at, marked: false);
            return window.Count >= options.RefusalLimit
                ? $"{window.Count} quota refusals within {options.RefusalWindow.TotalMinutes} min (limit {options.RefusalLimit})"
                : null;
        }
    }

    /// <summary>
    /// Counts a transaction that relayed nothing (refused MAIL, MAIL+RSET loops, DATA abandoned by the client); returns the
    /// reason to suspend, or null. A script doing nothing but that fills logs and upstream sessions and probes addresses: past
    /// <see cref="SuspensionOptions.UnsentLimit"/> within <see cref="SuspensionOptions.RefusalWindow"/> it is stopped.
    /// </summary>
    public string? ObserveUnsent(uint uid, DateTimeOffset at, UnsentKind kind)
    {
        if (options.UnsentLimit <= 0)
        {
            return null;
        }

        lock (_lock)
        {
            var window = Window(_unsent, uid, options.RefusalWindow);
            window.Add(at, marked: false);
            return window.Count >= options.UnsentLimit
                ? $"{window.Count} transactions that relayed nothing within {options.RefusalWindow.TotalMinutes} min (limit {options.UnsentLimit}), the last: {Describe(kind)}"
                : null;
        }
    }

    /// <summary>What the user did, in words for the suspension reason.</summary>
    public static string Describe(UnsentKind kind) => kind switch
    {
        UnsentKind.MailRefused => "MAIL refused (a parameter the upstream does not support)",
        UnsentKind.Reset => "reset before DATA (RSET or EHLO)",
        UnsentKind.ClientLeft => "the client left before DATA",
        UnsentKind.UpstreamRefused => "MAIL or every recipient refused upstream",
        UnsentKind.RefusedAtData => "refused at DATA before anything was relayed",
        UnsentKind.AbandonedInData => "the client left or trickled during DATA, before its end",
        _ => kind.ToString(),
    };

    /// <summary>Counts a relayed transaction's outcome; returns the reason to suspend, or null.</summary>
    public string? ObserveOutcome(uint uid, DateTimeOffset at, TransactionOutcome outcome)
    {
        if (options.FailureRatioPercent <= 0 || outcome is not (TransactionOutcome.Delivered or TransactionOutcome.Deferred or TransactionOutcome.Rejected))
        {
            return null;
        }

        lock (_lock)
        {
            var window = Window(_outcomes, uid, options.FailureWindow);
            window.Add(at, marked: outcome != TransactionOutcome.Delivered);
            var failed = window.Marked;
            return window.Count >= options.FailureMinimum && failed * 100L >= options.FailureRatioPercent * (long)window.Count
                ? $"{failed} of {window.Count} messages rejected or deferred upstream within {options.FailureWindow.TotalMinutes} min (limit {options.FailureRatioPercent}%)"
                : null;
        }
    }

    /// <summary>Forgets a user's history (after an unblock, so the same burst does not trip again at once).</summary>
    public void Reset(uint uid)
    {
        lock (_lock)
        {
            _refusals.Remove(uid);
            _outcomes.Remove(uid);
            _unsent.Remove(uid);
        }
    }

    private SlidingCount Window(Dictionary<uint, SlidingCount> all, uint uid, TimeSpan length)
    {
        if (!all.TryGetValue(uid, out var window))
        {
            window = new SlidingCount();
            all[uid] = window;
        }

        window.Expire(time.GetUtcNow() - length);
        return window;
    }

    /// <summary>
    /// Events of one user in a time window, oldest first, with a running count of the marked ones: an observation
    /// costs O(1) amortized, however many messages the user sent in the window (thousands an hour on a busy account).
    /// Events arrive in (nearly) time order; one that is a little out of order just leaves the window a little late.
    /// </summary>
    private sealed class SlidingCount
    {
        private readonly Queue<(DateTimeOffset At, bool Marked)> _events = new();

        public int Count => _events.Count;

        public int Marked { get; private set; }

        public void Add(DateTimeOffset at, bool marked)
        {
            _events.Enqueue((at, marked));
            Marked += marked ? 1 : 0;
        }

        public void Expire(DateTimeOffset start)
        {
            while (_events.TryPeek(out var oldest) && oldest.At <= start)
            {
                _events.Dequeue();
                Marked -= oldest.Marked ? 1 : 0;
            }
        }
    }
}
