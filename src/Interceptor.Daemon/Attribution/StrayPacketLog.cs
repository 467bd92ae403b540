using System.Net;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Names the customers behind the packets the guard table refuses for having escaped the redirect: a SYN that conntrack
/// files under a connection it already has (the port of someone's ended connection, a reply to a packet forged from a mail
/// server), or an invalid or untracked packet. The guard's two rules for them log each packet to the NFLOG group
/// Interception.StrayLogGroup; the kernel sends the uid that owns the sending socket with it. Each becomes a refusal in
/// the <see cref="RefusalLog"/> (first one at once, then a summary per interval, per uid; a sub-UID is charged to its
/// owner) and in smtpi_connections_refused_total. The kernel refuses them whether or not this runs.
/// </summary>
public sealed class StrayPacketLog(ushort group, RefusalLog refusals, SubordinateUidFile subordinates, ILogger logger, AttributionMetrics? metrics = null)
    : IDisposable
{
    /// <summary>The causes, as in the log and the metric's reason label.</summary>
    public const string StraySyn = "stray_syn";

    public const string StrayPacket = "stray_packet";

    private static readonly IPEndPoint Unknown = new(IPAddress.Any, 0);
    private NflogListener? _listener;
    private long _lostAt = long.MinValue;
    private long _heard;

    /// <summary>Packets taken from the group (ours and any other rule's that logs to it).</summary>
    public long Heard => Interlocked.Read(ref _heard);

    /// <summary>True once the group is bound: only then may the guard's rules log to it.</summary>
    public bool Listening => _listener is not null;

    /// <summary>
    /// Binds the group. A group the kernel refuses (another process has it, or the kernel has no NFLOG) is logged, and the
    /// daemon runs on without the names: the table is then installed without the log statements (<see cref="Listening"/>),
    /// which would hand the packets to whoever has the group or, without NFLOG, fail the install. The refusals themselves
    /// are the kernel's either way.
    /// </summary>
    public bool Start()
    {
        if (group == 0)
        {
            return false;
        }

        try
        {
            _listener = NflogListener.Start(group, Logged, Lost, e => logger.StrayLogFailed(group, e.Message));
        }
        catch (LinuxInteropException e)
        {
            logger.StrayLogUnavailable(group, e.Message);
        }

        return Listening;
    }

    /// <summary>One packet of the group (on the listener's thread, which may block on NSS and /etc/subuid).</summary>
    public void Logged(LoggedPacket packet)
    {
        Interlocked.Increment(ref _heard);
        var (cause, reason) = packet.Prefix switch
        {
            RulesetSpec.StraySynLogPrefix => (StraySyn,
                "a SYN to a mail port that conntrack files under a connection it already has, so no NAT rule saw it: reset by the guard table (a customer reaching for the mail server past the redirect, through the port of someone's ended connection or a reply to a forged packet; rarely, a client's port reused too soon)"),
            RulesetSpec.StrayPacketLogPrefix => (StrayPacket,
                "a packet to a mail port that conntrack cannot place or does not track, so no NAT rule saw it: dropped by the guard table (a customer reaching for the mail server past the redirect)"),
            _ => (null, null),
        };
        if (cause is null)
        {
            // Another rule of the host logs to our group: not ours to report.
            return;
        }

        metrics?.ConnectionRefused(cause);
        var owner = packet.Uid;
        if (owner is { } uid && subordinates.Current.FindOwner(uid) is { } range)
        {
            owner = range.Uid;
            reason += $"; sent as sub-UID {uid}";
        }

        refusals.Refused(cause, owner, packet.Source ?? Unknown, packet.Destination, reason!);
    }

    // The kernel could not queue some packets to us (our socket's buffer was full): at most one line a minute says so.
    private void Lost()
    {
        var now = Environment.TickCount64;
        if (now - Interlocked.Read(ref _lostAt) >= 60_000)
        {
            Interlocked.Exchange(ref _lostAt, now);
            logger.StrayPacketsLost(group);
        }
    }

    public void Dispose() => _listener?.Dispose();
}
