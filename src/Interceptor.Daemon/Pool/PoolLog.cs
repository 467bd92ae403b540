using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Pool;

/// <summary>Log lines of the relay pool's daemon side (event ids 1510-1539; 1501 is the DNSBL checker's).</summary>
internal static partial class PoolLog
{
    [LoggerMessage(1510, LogLevel.Error, "relay {Relay} burned: {Reason}")]
    public static partial void RelayBurned(this ILogger logger, string relay, string reason);

    [LoggerMessage(1511, LogLevel.Warning, "relay {Relay} promoted from the reserve: {Reason}")]
    public static partial void RelayPromoted(this ILogger logger, string relay, string reason);

    [LoggerMessage(1512, LogLevel.Warning, "relay {Relay} returned to service: {Reason}")]
    public static partial void RelayReturned(this ILogger logger, string relay, string reason);

    [LoggerMessage(1513, LogLevel.Warning, "relay {Relay} restored by an admin: {Reason}")]
    public static partial void RelayRestored(this ILogger logger, string relay, string reason);

    [LoggerMessage(1514, LogLevel.Warning, "relay {Relay} is down: {Reason}")]
    public static partial void RelayDown(this ILogger logger, string relay, string reason);

    [LoggerMessage(1515, LogLevel.Error, "relay {Relay} burned and the reserve is empty: {Reason}")]
    public static partial void ReserveEmpty(this ILogger logger, string relay, string reason);

    [LoggerMessage(1516, LogLevel.Error, "the host's own address burned: {Reason}; Auto mode sends through the relay pool until it returns")]
    public static partial void HostBurned(this ILogger logger, string reason);

    [LoggerMessage(1517, LogLevel.Warning, "the host's own address is back in service: {Reason}")]
    public static partial void HostReturned(this ILogger logger, string reason);

    [LoggerMessage(1518, LogLevel.Error, "relay {Relay} refused the login of user {User}: {Reply}; the relay stays in service")]
    public static partial void LoginRefused(this ILogger logger, string relay, string user, string reply);

    [LoggerMessage(1519, LogLevel.Warning, "relay {Relay} failed a message: {Reason}")]
    public static partial void RelayFailed(this ILogger logger, string relay, string reason);

    [LoggerMessage(1520, LogLevel.Error, "cannot store the relay pool's state ({Count} relays pending): {Reason}; retrying in {Seconds:0} s")]
    public static partial void SaveFailed(this ILogger logger, int count, string reason, double seconds);

    [LoggerMessage(1521, LogLevel.Information, "relay pool state stored again after a failure ({Count} relays)")]
    public static partial void SaveRecovered(this ILogger logger, int count);

    [LoggerMessage(1522, LogLevel.Error, "relay pool alert dropped ({Event} for {Relay}): {Pending} alerts are waiting for the alert command already")]
    public static partial void AlertDropped(this ILogger logger, string @event, string relay, int pending);

    [LoggerMessage(1523, LogLevel.Warning, "DNSBL check of {Relay} ({Address}): {Result}; a resolver error, never counted as a listing")]
    public static partial void DnsblResolverError(this ILogger logger, string relay, string address, string result);

    [LoggerMessage(1524, LogLevel.Information, "DNSBL check of {Relay} ({Address}): {Result}")]
    public static partial void DnsblChecked(this ILogger logger, string relay, string address, string result);

    [LoggerMessage(1525, LogLevel.Information, "relay pool: {Count} relays ({Summary}); DNSBL zones {Zones}, checked every {Minutes:0} min")]
    public static partial void PoolStarted(this ILogger logger, int count, string summary, string zones, double minutes);

    [LoggerMessage(1526, LogLevel.Warning, "relay {Relay} burned by an admin (uid {PeerUid}): {Reason}")]
    public static partial void AdminBurned(this ILogger logger, uint peerUid, string relay, string reason);

    [LoggerMessage(1527, LogLevel.Warning, "relay {Relay} restored by an admin (uid {PeerUid})")]
    public static partial void AdminRestored(this ILogger logger, uint peerUid, string relay);
}
