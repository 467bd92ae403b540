using Interceptor.Core.Options;

namespace Interceptor.Core.Pool;

/// <summary>The result of looking one address up in one DNSBL zone.</summary>
public sealed record DnsblResult(string Zone, DnsblVerdict Verdict, string Detail);

/// <summary>How long a relay that failed is left alone: doubling from <see cref="First"/> up to <see cref="Longest"/>.</summary>
public sealed record RelayBackoff(TimeSpan First, TimeSpan Longest)
{
    public static readonly RelayBackoff Default = new(TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(10));

    public TimeSpan After(int failures) =>
        TimeSpan.FromTicks(Math.Min(Longest.Ticks, First.Ticks * (1L << Math.Clamp(failures - 1, 0, 20))));
}

/// <summary>
/// The relay pool's state machine (issue 15): which relay carries the next message, and how relays burn, get promoted,
/// go down and come back. Pure: time comes from a <see cref="TimeProvider"/>, I/O stays with the caller, which persists
/// <see cref="PoolUpdate.Changed"/> and announces <see cref="PoolUpdate.Events"/>.
/// </summary>
/// <remarks>
/// Rules: relays in rotation are tried in <see cref="RelayState.Order"/> (the Primaries in configured order at first); a
/// relay in reserve (a Standby) is never chosen while any relay in rotation is usable (not down): its address stays
/// unknown to blocklists until it is needed. A relay in rotation that burns leaves it, and the reserve's first never-used
/// Standby is promoted to the back of the rotation, then a used one, then the least recently burned one that returned.
/// A burned relay returns after <c>Burn.ReturnAfterDays</c> and <c>Burn.ReturnCleanChecks</c> clean DNSBL checks in a
/// row (or an admin's restore): to the back of the rotation while it is shorter than the configured Primaries, to the
/// reserve otherwise. A relay that fails to connect is down for a doubling backoff (a circuit per relay: the message
/// goes on to the next relay; once the backoff ends the next message tries it again).
/// Polly's circuit breaker was the suggested library, but it cannot open on one failure (MinimumThroughput is at
/// least 2) and keeps its state in memory only; this state must open on the first failure and survive restarts.
/// </remarks>
public sealed partial class RelayPool
{
    /// <summary>The host itself (Auto mode), kept beside the relays; '@' can never start a relay's name.</summary>
    public const string HostKey = "@host";

    private const int EvidenceKept = 5;
    private const int EvidenceChars = 300;

    private readonly Dictionary<string, RelayState> _states = new(StringComparer.OrdinalIgnoreCase);
    private readonly int _primaryCount;
    private readonly BurnOptions _burn;
    private readonly RelayBackoff _backoff;
    private readonly BurnClassifier _classifier;
    private readonly BurnWindow _window;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();

    /// <param name="relays">Relay.Smarthosts, in order.</param>
    /// <param name="saved">What the store kept: it wins for every relay still configured (a restart brings nothing back).</param>
    public RelayPool(IReadOnlyList<SmarthostOptions> relays, BurnOptions burn, IReadOnlyList<RelayState> saved, TimeProvider time, RelayBackoff? backoff = null)
    {
        ArgumentNullException.ThrowIfNull(relays);
        ArgumentNullException.ThrowIfNull(burn);
        ArgumentNullException.ThrowIfNull(saved);
        ArgumentNullException.ThrowIfNull(time);
        _burn = burn;
        _time = time;
        _backoff = backoff ?? RelayBackoff.Default;
        _classifier = new BurnClassifier(burn.Patterns);
        _window = new BurnWindow(burn.Threshold, burn.Window, time);
        _primaryCount = relays.Count(r => r.Role == SmarthostRole.Primary);
        var now = time.GetUtcNow();
        var kept = saved.ToDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < relays.Count; i++)
        {
            var name = relays[i].Name;
            _states[name] = kept.TryGetValue(name, out var state) ? state : new RelayState
            {
                Name = name,
                Status = relays[i].Role == SmarthostRole.Primary ? RelayStatus.InRotation : RelayStatus.Reserve,
                Order = i,
                Since = now,
            };
        }

        _states[HostKey] = kept.TryGetValue(HostKey, out var host) ? host : new RelayState { Name = HostKey, Status = RelayStatus.InRotation, Since = now };
    }

    /// <summary>Every relay's state, rotation first (in order), then reserve, then burned; the host last.</summary>
    public IReadOnlyList<RelayState> Snapshot()
    {
        lock (_lock)
        {
            return _states.Values.Where(s => s.Name != HostKey)
                .OrderBy(s => s.Status).ThenBy(s => s.Order)
                .Append(_states[HostKey]).ToList();
        }
    }

    /// <summary>
    /// The relay to try next for a message, skipping those it already tried; null when none is usable (the caller
    /// answers 451 4.4.1, never a direct send in Smarthost mode).
    /// </summary>
    public string? Choose(IReadOnlySet<string> tried)
    {
        ArgumentNullException.ThrowIfNull(tried);
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            var rotation = InRotation().Where(s => IsUp(s, now)).ToList();
            if (rotation.Count > 0)
            {
                // A Standby never carries mail while a relay in rotation is up, even one this message already tried.
                return rotation.FirstOrDefault(s => !tried.Contains(s.Name))?.Name;
            }

            return ReserveInPromotionOrder().FirstOrDefault(s => IsUp(s, now) && !tried.Contains(s.Name))?.Name;
        }
    }

    /// <summary>The relay took the message (or at least the connection, greeting, TLS and AUTH): its circuit closes.</summary>
    public PoolUpdate ReportSuccess(string relay) => Change(relay, s =>
        s.ConsecutiveFailures == 0 && s.DownUntil is null && s.Used ? s : s with { ConsecutiveFailures = 0, DownUntil = null, Used = true });

    /// <summary>The relay refused the connection, timed out, greeted with 4xx/5xx, failed STARTTLS or said 454 to AUTH.</summary>
    public PoolUpdate ReportFailure(string relay, string reason)
    {
        lock (_lock)
        {
            var state = Get(relay);
            var failures = state.ConsecutiveFailures + 1;
            var until = _time.GetUtcNow() + _backoff.After(failures);
            return Commit([new PoolEvent(PoolEventKind.Down, state.Name, $"{reason}; not tried before {until:u}")],
                state with { ConsecutiveFailures = failures, DownUntil = until });
        }
    }

    /// <summary>Counts a reply from <paramref name="relay"/> (or <see cref="HostKey"/>) against <c>Burn.Patterns</c>;
    /// burns it when <c>Burn.Threshold</c> matched within <c>Burn.WindowMinutes</c>, drawn by the mail of
    /// <c>Burn.RelayMinUsers</c> users, none counting more than its share of the threshold. The host needs replies drawn by the mail of <c>Burn.HostMinUsers</c> users from
    /// <c>Burn.HostMinNetworks</c> networks instead: <paramref name="source"/> says whose mail drew this one and which
    /// network answered (a relay's is ignored). What the reply quotes of the transaction's
    /// <paramref name="envelope"/> (its paths, as sent) is not looked at: see <see cref="EchoedEnvelope"/>.</summary>
    public PoolUpdate RecordReply(string relay, IReadOnlyList<string> replyLines, BurnSource source, IReadOnlyList<string>? envelope = null)
    {
        // Looked at again without her addresses only when it matched: a match is rare, a reply on every command.
        if (_classifier.Classify(replyLines) is null)
        {
            return PoolUpdate.None;
        }

        // An envelope that itself reads like a block notice (<"x S3150"@…>, <a@TSS04.example>), or a refusal naming it
        // (a relay's rhsbl check: "Sender address [her.example] blocked using dbl…"), says nothing of the sending address.
        envelope ??= [];
        if (envelope.Any(path => _classifier.Classify([path, EchoedEnvelope.InternalForm(path)]) is not null) || EchoedEnvelope.Names(replyLines, envelope))
        {
            return PoolUpdate.None;
        }

        replyLines = EchoedEnvelope.Strip(replyLines, envelope);
        var label = _classifier.Classify(replyLines);
        if (label is null)
        {
            return PoolUpdate.None;
        }

        lock (_lock)
        {
            var state = Get(relay);
            var evidence = Evidence(state, BurnClassifier.ReplyText(replyLines));
            // A relay answers from one place whatever the destination: only the users count there.
            var reached = state.Name == HostKey
                ? _window.Record(state.Name, source, _burn.HostMinUsers, _burn.HostMinNetworks)
                : _window.Record(state.Name, source with { Network = "" }, _burn.RelayMinUsers, 1, shareEach: true);
            if (state.Status == RelayStatus.Burned || !reached)
            {
                return Commit([], state with { Evidence = evidence });
            }

            return BurnLocked(state with { Evidence = evidence },
                $"{_burn.Threshold} blocklist replies within {_burn.Window.TotalMinutes:0.#} min (last: {label})");
        }
    }

    /// <summary>An admin's <c>relay burn NAME --reason TEXT</c> (or <c>host burn</c> with <see cref="HostKey"/>).</summary>
    public PoolUpdate Burn(string relay, string reason)
    {
        lock (_lock)
        {
            var state = Get(relay);
            return state.Status == RelayStatus.Burned ? PoolUpdate.None : BurnLocked(state, reason);
        }
    }

    /// <summary>An admin's <c>relay restore NAME</c> (or <c>host restore</c>): back at once, circuit closed.</summary>
    public PoolUpdate Restore(string relay, string reason)
    {
        lock (_lock)
        {
            var state = Get(relay) with { ConsecutiveFailures = 0, DownUntil = null };
            return state.Status == RelayStatus.Burned
                ? ReturnLocked(state, PoolEventKind.Restored, reason)
                : Commit([new PoolEvent(PoolEventKind.Restored, state.Name, reason)], state);
        }
    }

    /// <summary>Whether the host's own address is burned (Auto mode sends through the pool meanwhile).</summary>
    public bool HostBurned
    {
        get
        {
            lock (_lock)
            {
                return _states[HostKey].Status == RelayStatus.Burned;
            }
        }
    }
}
