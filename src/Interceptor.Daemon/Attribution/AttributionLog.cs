using System.Net;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Log lines of attribution: which user opened a connection, and the refusals when that cannot be told (event ids 300-399).
/// They come before a session exists, so they name the uid themselves.
/// </summary>
internal static partial class AttributionLog
{
    [LoggerMessage(300, LogLevel.Debug, "socket owner uid {Uid} of {Client} to {Destination} is not redirected there, so it is not this connection's client")]
    public static partial void OwnerNotRedirected(this ILogger logger, uint uid, IPEndPoint client, IPEndPoint destination);

    [LoggerMessage(321, LogLevel.Warning, "conntrack cannot name the client port of {Client} to {Destination} ({Reason}): connections are attributed by the port they show, which is the client's own unless NAT moved it; a port NAT moved onto another user's socket is then charged to that user. Load nf_conntrack_netlink and run the daemon with CAP_NET_ADMIN (said again in {Minutes} min if it persists)")]
    public static partial void ConntrackUnverifiable(this ILogger logger, IPEndPoint client, IPEndPoint destination, string reason, double minutes);

    [LoggerMessage(301, LogLevel.Debug, "conntrack lookup for {Client} to {Destination} failed: {Reason}")]
    public static partial void ConntrackLookupFailed(this ILogger logger, IPEndPoint client, IPEndPoint destination, string reason);

    [LoggerMessage(302, LogLevel.Debug, "conntrack has no entry with reply tuple {Listener} -> {Client}")]
    public static partial void ConntrackNoEntry(this ILogger logger, IPEndPoint listener, IPEndPoint client);

    [LoggerMessage(303, LogLevel.Debug, "conntrack names destination {ConntrackDestination} for {Client}, SO_ORIGINAL_DST said {Destination}; not attributing")]
    public static partial void ConntrackOtherDestination(this ILogger logger, IPEndPoint conntrackDestination, IPEndPoint client, IPEndPoint destination);

    [LoggerMessage(304, LogLevel.Debug, "conntrack names client {ConntrackClient} for {Client} to {Destination}; not attributing")]
    public static partial void ConntrackOtherClient(this ILogger logger, IPEndPoint conntrackClient, IPEndPoint client, IPEndPoint destination);

    [LoggerMessage(307, LogLevel.Information, "client {Client} to {Destination} was moved by NAT to port {ShownPort}; attributed by its conntrack entry")]
    public static partial void AttributedThroughConntrack(this ILogger logger, IPEndPoint client, IPEndPoint destination, int shownPort);

    [LoggerMessage(308, LogLevel.Warning, "refused uid={Uid} {Client} to {Destination}: the uid has no account and is not a subordinate uid of one (Attribution.UnknownUids is Refuse); {Suppressed} more refusal(s) of it in the last interval were not logged")]
    public static partial void UnknownUidRefused(this ILogger logger, uint uid, IPEndPoint client, IPEndPoint destination, long suppressed);

    [LoggerMessage(314, LogLevel.Warning, "the guard's refusals of packets that escaped the redirect are not attributed: {Reason}. The kernel still refuses them (counters in the guard table), without logging them; set Interception.StrayLogGroup to a free NFLOG group (not {Group}), or 0 to stop trying")]
    public static partial void StrayLogUnavailable(this ILogger logger, ushort group, string reason);

    [LoggerMessage(315, LogLevel.Error, "NFLOG group {Group} stopped: {Reason}. The guard's refusals of packets that escaped the redirect are not attributed until the group is bound again: the socket is closed and the group bound anew in {Seconds} s; the kernel still refuses them")]
    public static partial void StrayLogFailed(this ILogger logger, ushort group, string reason, double seconds);

    [LoggerMessage(318, LogLevel.Information, "NFLOG group {Group} bound again after it stopped ({Refusals} refused attempt(s) first): the guard's refusals of packets that escaped the redirect are attributed again")]
    public static partial void StrayLogBoundAgain(this ILogger logger, ushort group, int refusals);

    [LoggerMessage(319, LogLevel.Error, "NFLOG group {Group} could not be bound again: {Reason}. Tried again in {Seconds} s, then at doubling intervals up to {Minutes} min (not logged again until it is bound); the kernel still refuses the packets, unnamed")]
    public static partial void StrayLogRebindRefused(this ILogger logger, ushort group, string reason, double seconds, double minutes);

    [LoggerMessage(316, LogLevel.Warning, "NFLOG group {Group}: the kernel dropped packets it could not queue to the daemon, so some refusals of packets that escaped the redirect are neither logged nor counted in smtpi_connections_refused_total (the guard table's counters have them all)")]
    public static partial void StrayPacketsLost(this ILogger logger, ushort group);

    [LoggerMessage(317, LogLevel.Error, "a {Cause} refusal of uid {Uid} could not be named: {Reason}; counted in smtpi_connections_refused_total, not logged (at most one such line a minute)")]
    public static partial void StrayPacketNotNamed(this ILogger logger, uint? uid, string cause, string reason);

    // The refusal lines take their level from the cause: Warning, or Error for a fault such as a failed lookup.
    [LoggerMessage(EventId = 310, Message = "refused {Client} to {Destination} from uid {Uid} ({User}): {Reason}; more {Cause} refusals from this uid are summarised every {IntervalSeconds} s")]
    public static partial void RefusedFromUid(this ILogger logger, LogLevel level, IPEndPoint client, string destination, uint uid, string? user, string reason, string cause, int intervalSeconds);

    [LoggerMessage(EventId = 311, Message = "refused {Client} to {Destination} from an unknown owner: {Reason}; more {Cause} refusals of unknown owners are summarised every {IntervalSeconds} s")]
    public static partial void RefusedFromUnknownOwner(this ILogger logger, LogLevel level, IPEndPoint client, string destination, string reason, string cause, int intervalSeconds);

    [LoggerMessage(EventId = 312, Message = "refused {Count} more connections from uid {Uid} ({User}) in the last {Seconds} s: {Cause}; the last was {Client} to {Destination}: {Reason}")]
    public static partial void RefusalSummaryOfUid(this ILogger logger, LogLevel level, long count, uint uid, string user, double seconds, string cause, IPEndPoint? client, string destination, string reason);

    [LoggerMessage(EventId = 313, Message = "refused {Count} more connections from unknown owners in the last {Seconds} s: {Cause}; the last was {Client} to {Destination}: {Reason}")]
    public static partial void RefusalSummaryOfUnknownOwners(this ILogger logger, LogLevel level, long count, double seconds, string cause, IPEndPoint? client, string destination, string reason);
}
