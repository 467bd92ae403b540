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
    private readonly Dictionary<uint, List<DateTimeOffset>> _refusals = [];
    private readonly Dictionary<uint, List<(DateTimeOffset At, bool Failed)>> _outcomes = [];

    /// <summary>Counts a policy refusal; returns the reason to suspend, or null.</summary>
    public string? ObserveRefusal(uint uid, DateTimeOffset at)
    {
        if (options.RefusalLimit <= 0)
        {
            return null;
        }

        lock (_lock)
        {
            var list = Window(_refusals, uid, TimeSpan.FromMinutes(options.RefusalWindowMinutes));
            list.Add(at);
            return list.Count >= options.RefusalLimit
                ? $"{list.Count} quota refusals within {options.RefusalWindowMinutes} min (limit {options.RefusalLimit})"
                : null;
        }
    }

    /// <summary>Counts a relayed transaction's outcome; returns the reason to suspend, or null.</summary>
    public string? ObserveOutcome(uint uid, DateTimeOffset at, TransactionOutcome outcome)
    {
        if (options.FailureRatioPercent <= 0 || outcome is not (TransactionOutcome.Delivered or TransactionOutcome.Deferred or TransactionOutcome.Rejected))
        {
            return null;
        }

        lock (_lock)
        {
            var list = Window(_outcomes, uid, TimeSpan.FromMinutes(options.FailureWindowMinutes));
            list.Add((at, outcome != TransactionOutcome.Delivered));
            var failed = list.Count(o => o.Failed);
            return list.Count >= options.FailureMinimum && failed * 100 >= options.FailureRatioPercent * list.Count
                ? $"{failed} of {list.Count} messages rejected or deferred upstream within {options.FailureWindowMinutes} min (limit {options.FailureRatioPercent}%)"
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
        }
    }

    private List<T> Window<T>(Dictionary<uint, List<T>> all, uint uid, TimeSpan length)
    {
        if (!all.TryGetValue(uid, out var list))
        {
            list = [];
            all[uid] = list;
        }

        var start = time.GetUtcNow() - length;
        list.RemoveAll(item => item switch
        {
            DateTimeOffset at => at <= start,
            ValueTuple<DateTimeOffset, bool> outcome => outcome.Item1 <= start,
            _ => false,
        });
        return list;
    }
}
