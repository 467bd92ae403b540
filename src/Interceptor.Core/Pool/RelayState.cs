namespace Interceptor.Core.Pool;

/// <summary>Where a relay stands in the pool.</summary>
public enum RelayStatus
{
    /// <summary>Carries mail: the first usable one in <see cref="RelayState.Order"/> is chosen.</summary>
    InRotation,

    /// <summary>Waits: a Standby (never used unless every relay in rotation is down), or a burned relay that returned
    /// while the rotation was full. Promoted when a relay in rotation burns.</summary>
    Reserve,

    /// <summary>Out until <c>Burn.ReturnAfterDays</c> and <c>Burn.ReturnCleanChecks</c> hold, or an admin restores it.</summary>
    Burned,
}

/// <summary>
/// The durable state of one relay (or of the host itself in Auto mode, as <see cref="RelayPool.HostKey"/>), as the
/// store keeps it: a restart must not bring a burned relay back.
/// </summary>
public sealed record RelayState
{
    public required string Name { get; init; }

    public RelayStatus Status { get; init; }

    /// <summary>Position: in rotation, lower is tried first (a promoted or returned relay goes to the back); in reserve,
    /// the configured order of the Standbys.</summary>
    public int Order { get; init; }

    /// <summary>Whether the relay has carried mail: a Standby's address stops being unknown the first time.</summary>
    public bool Used { get; init; }

    /// <summary>When <see cref="Status"/> last changed.</summary>
    public DateTimeOffset Since { get; init; }

    /// <summary>Connection failures in a row (refused, timeout, 4xx/5xx greeting, STARTTLS failed, 454 to AUTH).</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>Not tried before this time (its backoff after <see cref="ConsecutiveFailures"/>).</summary>
    public DateTimeOffset? DownUntil { get; init; }

    /// <summary>When it last burned; a returned relay keeps it so the least recently burned is promoted first.</summary>
    public DateTimeOffset? BurnedSince { get; init; }

    /// <summary>Why it burned (or was restored), for <c>relays</c> and the alert.</summary>
    public string Reason { get; init; } = "";

    /// <summary>The last few replies or DNSBL answers that burned it.</summary>
    public IReadOnlyList<string> Evidence { get; init; } = [];

    /// <summary>DNSBL checks in a row, since it burned, that found its address listed nowhere.</summary>
    public int CleanChecks { get; init; }

    /// <summary>The last DNSBL result, as <c>relays</c> shows it (e.g. "listed: zen.spamhaus.org 127.0.0.2").</summary>
    public string LastDnsbl { get; init; } = "";

    public DateTimeOffset? LastDnsblAt { get; init; }

    public bool Equals(RelayState? other) =>
        other is not null && Name == other.Name && Status == other.Status && Order == other.Order && Used == other.Used
        && Since == other.Since && ConsecutiveFailures == other.ConsecutiveFailures && DownUntil == other.DownUntil
        && BurnedSince == other.BurnedSince && Reason == other.Reason && Evidence.SequenceEqual(other.Evidence)
        && CleanChecks == other.CleanChecks && LastDnsbl == other.LastDnsbl && LastDnsblAt == other.LastDnsblAt;

    public override int GetHashCode() => HashCode.Combine(Name, Status, Order, Since, BurnedSince);
}

/// <summary>What a pool change means for the outside: an alert (<c>SMTPI_EVENT=relay-burned</c>), a log line.</summary>
public enum PoolEventKind
{
    Burned,
    Promoted,
    Returned,
    Restored,
    Down,

    /// <summary>A relay in rotation burned and no relay was left in reserve to take its place.</summary>
    ReserveEmpty,
}

public sealed record PoolEvent(PoolEventKind Kind, string Relay, string Reason);

/// <summary>The outcome of one pool operation: what to announce, and which states to persist.</summary>
public sealed record PoolUpdate(IReadOnlyList<PoolEvent> Events, IReadOnlyList<RelayState> Changed)
{
    public static readonly PoolUpdate None = new([], []);
}
