namespace Interceptor.Daemon.Control;

// The "data" of the relay pool's verbs (issue 15). As in AdminData.cs: the camelCase JSON fields are a contract; add
// fields rather than rename. No field ever carries a login or a password (Relay.CredentialsFile).

/// <summary>One relay (or the host itself in Auto mode) as `relays` and `status` show it.</summary>
/// <param name="Role">"primary", "standby", or "host".</param>
/// <param name="State">"in_rotation", "reserve", "burned" or "down" (a backoff after failures runs until <paramref name="DownUntil"/>).</param>
/// <param name="Since">When its state last changed.</param>
/// <param name="Reason">Why it burned, returned or was restored; empty when nothing happened yet.</param>
/// <param name="LastDnsbl">"clean", "listed: zone answer", "resolver error: zone answer", or empty before the first check.</param>
public sealed record RelayRow(
    string Name,
    string Role,
    string Address,
    string State,
    DateTimeOffset Since,
    string Reason,
    long MessagesLastHour,
    string LastDnsbl,
    DateTimeOffset? LastDnsblAt,
    DateTimeOffset? DownUntil,
    bool Used,
    IReadOnlyList<string> Evidence);

/// <summary>`relays`: every relay, rotation first, then reserve, then burned; the host (Auto mode only) apart.</summary>
public sealed record RelaysData(string Mode, IReadOnlyList<RelayRow> Relays, RelayRow? Host);

/// <summary>`relay burn|restore NAME`, `host burn|restore`: what changed and the state now.</summary>
/// <param name="Stored">Whether the state store has the change (false: it is in effect, but a restart would lose it).</param>
public sealed record RelayChangeData(string Relay, string Action, bool Changed, bool Stored, string Message, RelayRow State);
