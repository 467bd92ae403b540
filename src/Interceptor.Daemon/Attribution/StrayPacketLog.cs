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

    // At most one line a minute about lost packets, and one about packets that could not be named.
    private const long QuietMs = 60_000;

    private static readonly IPEndPoint Unknown = new(IPAddress.Any, 0);
    private NflogListener? _listener;
    private long _lostAt = -QuietMs;
    private long _failedAt = -QuietMs;
    private long _heard;

    /// <summary>Packets taken from the group (ours and any other rule's that logs to it).</summary>
    public long Heard => Interlocked.Read(ref _heard);

    /// <summary>
    /// Binds the group, and makes sure the kernel takes the guard's log statements (a kernel may have NFLOG and no nft
    /// log, whose refusal would fail the whole install). When either fails, the reason is logged and the daemon runs on
    /// without the names: the table is then installed without the log statements (false), which would otherwise hand the
    /// packets to whoever has the group. The refusals themselves are the kernel's either way.
    /// </summary>
    public async Task<bool> StartAsync(RulesetManager rules, RulesetSpec spec, CancellationToken cancellationToken)
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
            return false;
        }

        if (await rules.FindInstallProblemAsync(spec with { StrayLogGroup = group }, cancellationToken) is { } refused
            && await rules.FindInstallProblemAsync(spec with { StrayLogGroup = 0 }, cancellationToken) is null)
        {
            _listener.Dispose();
            _listener = null;
            logger.StrayLogUnavailable(group, $"the kernel takes the table only without the guard's log statements (no nft log?): {refused}");
            return false;
        }

        return true;
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
                "a packet to a mail port that conntrack cannot place or does not track, so no NAT rule saw it: dropped by the guard table (a customer reaching for the mail server past the redirect, or a late segment of a connection that had already ended)"),
            _ => (null, null),
        };
        if (cause is null)
        {
            // Another rule of the host logs to our group: not ours to report.
            return;
        }

        metrics?.ConnectionRefused(cause);
        try
        {
            var owner = packet.Uid;
            if (owner is { } uid && subordinates.Current.FindOwner(uid) is { } range)
            {
                owner = range.Uid;
                reason += $"; sent as sub-UID {uid}";
            }

            refusals.Refused(cause, owner, packet.Source ?? Unknown, packet.Destination, reason!);
        }
#pragma warning disable CA1031 // on the listener's thread: whatever fails for one packet must not end the naming
        catch (Exception e)
#pragma warning restore CA1031
        {
            // NSS or /etc/subuid failed for this one (sssd down, out of descriptors, an unreadable file): the next packet is
            // tried afresh, so that whoever can make one lookup fail cannot stop the naming for good.
            if (Due(ref _failedAt))
            {
                logger.StrayPacketNotNamed(packet.Uid, cause, e.Message);
            }
        }
    }

    // The kernel could not queue some packets to us (our socket's buffer was full): at most one line a minute says so.
    private void Lost()
    {
        if (Due(ref _lostAt))
        {
            logger.StrayPacketsLost(group);
        }
    }

    // True at most once a minute per kind of trouble (all on the listener's thread).
    private static bool Due(ref long last)
    {
        var now = Environment.TickCount64;
        if (now - last < QuietMs)
        {
            return false;
        }

        last = now;
        return true;
    }

    public void Dispose() => _listener?.Dispose();
}
