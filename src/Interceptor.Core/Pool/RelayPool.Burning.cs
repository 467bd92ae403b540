namespace Interceptor.Core.Pool;

/// <summary>Burning, promotion and return: the part of the pool that DNSBL checks and burn replies drive.</summary>
public sealed partial class RelayPool
{
    /// <summary>
    /// One DNSBL check of <paramref name="relay"/>'s egress address (or the host's) across <c>Burn.DnsblZones</c>: a
    /// listing burns it; for a burned one, a check with no listing and no resolver error counts toward its return.
    /// Resolver errors (127.255.255.x, timeouts) change nothing but <see cref="RelayState.LastDnsbl"/>.
    /// </summary>
    public PoolUpdate RecordDnsbl(string relay, IReadOnlyList<DnsblResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            var listed = results.Where(r => r.Verdict == DnsblVerdict.Listed).ToList();
            var errors = results.Where(r => r.Verdict == DnsblVerdict.ResolverError).ToList();
            var summary = listed.Count > 0 ? "listed: " + string.Join(", ", listed.Select(r => $"{r.Zone} {r.Detail}"))
                : errors.Count > 0 ? "resolver error: " + string.Join(", ", errors.Select(r => $"{r.Zone} {r.Detail}"))
                : "clean";
            var state = Get(relay) with { LastDnsbl = summary, LastDnsblAt = now };
            if (listed.Count > 0)
            {
                return state.Status == RelayStatus.Burned
                    ? Commit([], state with { CleanChecks = 0 })
                    : BurnLocked(state with { Evidence = Evidence(state, summary) }, $"DNSBL {summary}");
            }

            if (state.Status != RelayStatus.Burned || errors.Count > 0)
            {
                return Commit([], state);
            }

            return ReturnIfDue(state with { CleanChecks = state.CleanChecks + 1 }, now);
        }
    }

    /// <summary>Returns every burned relay (and the host) whose return conditions hold now; run after each DNSBL round
    /// and periodically (with <c>Burn.ReturnCleanChecks</c> 0 only time is needed).</summary>
    public PoolUpdate ReturnDue()
    {
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            var updates = _states.Values.Where(s => s.Status == RelayStatus.Burned).ToList().Select(s => ReturnIfDue(s, now)).ToList();
            return new PoolUpdate(updates.SelectMany(u => u.Events).ToList(), updates.SelectMany(u => u.Changed).ToList());
        }
    }

    private PoolUpdate ReturnIfDue(RelayState state, DateTimeOffset now)
    {
        var due = state.BurnedSince is { } since && now - since >= _burn.ReturnAfter
            && state.CleanChecks >= _burn.ReturnCleanChecks;
        return due
            ? ReturnLocked(state, PoolEventKind.Returned, $"{_burn.ReturnAfter.TotalDays:0.#} days and {state.CleanChecks} clean DNSBL checks since it burned")
            : Commit([], state);
    }

    private PoolUpdate BurnLocked(RelayState state, string reason)
    {
        var now = _time.GetUtcNow();
        _window.Reset(state.Name);
        var wasInRotation = state.Status == RelayStatus.InRotation;
        var burned = state with { Status = RelayStatus.Burned, Since = now, BurnedSince = now, Reason = reason, CleanChecks = 0 };
        var events = new List<PoolEvent> { new(PoolEventKind.Burned, state.Name, reason) };
        var changed = new List<RelayState> { burned };
        _states[state.Name] = burned;
        if (wasInRotation && state.Name != HostKey)
        {
            var promoted = ReserveInPromotionOrder().FirstOrDefault();
            if (promoted is null)
            {
                events.Add(new PoolEvent(PoolEventKind.ReserveEmpty, state.Name, "no relay left in reserve to take its place"));
            }
            else
            {
                var moved = promoted with { Status = RelayStatus.InRotation, Order = BackOfRotation(), Since = now };
                _states[moved.Name] = moved;
                changed.Add(moved);
                events.Add(new PoolEvent(PoolEventKind.Promoted, moved.Name, $"replaces {state.Name}"));
            }
        }

        return new PoolUpdate(events, changed);
    }

    private PoolUpdate ReturnLocked(RelayState state, PoolEventKind kind, string reason)
    {
        var now = _time.GetUtcNow();
        _window.Reset(state.Name);
        var toRotation = state.Name == HostKey || InRotation().Count() < _primaryCount;
        var returned = state with
        {
            Status = toRotation ? RelayStatus.InRotation : RelayStatus.Reserve,
            Order = toRotation ? BackOfRotation() : state.Order,
            Since = now,
            Reason = reason,
            CleanChecks = 0,
        };
        return Commit([new PoolEvent(kind, state.Name, reason)], returned);
    }

    private IEnumerable<RelayState> InRotation() =>
        _states.Values.Where(s => s.Status == RelayStatus.InRotation && s.Name != HostKey).OrderBy(s => s.Order);

    /// <summary>Never-used Standbys in configured order, then used ones, then returned ones, least recently burned first.</summary>
    private IEnumerable<RelayState> ReserveInPromotionOrder() =>
        _states.Values.Where(s => s.Status == RelayStatus.Reserve)
            .OrderBy(s => s.BurnedSince is not null)
            .ThenBy(s => s.Used)
            .ThenBy(s => s.BurnedSince ?? DateTimeOffset.MinValue)
            .ThenBy(s => s.Order);

    private int BackOfRotation() => InRotation().Select(s => s.Order + 1).DefaultIfEmpty(0).Max();

    private static bool IsUp(RelayState state, DateTimeOffset now) => state.DownUntil is not { } until || until <= now;

    private RelayState Get(string relay) =>
        _states.TryGetValue(relay, out var state) ? state : throw new ArgumentException($"no relay named \"{relay}\" in Relay.Smarthosts", nameof(relay));

    private PoolUpdate Change(string relay, Func<RelayState, RelayState> change)
    {
        lock (_lock)
        {
            return Commit([], change(Get(relay)));
        }
    }

    /// <summary>Stores <paramref name="state"/>; reports it as changed only when it differs from what was there.</summary>
    private PoolUpdate Commit(IReadOnlyList<PoolEvent> events, RelayState state)
    {
        var before = _states[state.Name];
        _states[state.Name] = state;
        return new PoolUpdate(events, before.Equals(state) ? [] : [state]);
    }

    private static List<string> Evidence(RelayState state, string line) =>
        state.Evidence.Append(line.Length > EvidenceChars ? line[..EvidenceChars] : line).TakeLast(EvidenceKept).ToList();
}
