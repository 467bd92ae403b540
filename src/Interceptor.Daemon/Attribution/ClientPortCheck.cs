using System.Net;
using Interceptor.Core.Net;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>What conntrack says of a redirected connection's client: its own endpoint, or why it cannot say.</summary>
public enum ClientPortAnswer
{
    /// <summary>Conntrack's original tuple names the client's own endpoint (the port NAT may have moved).</summary>
    Known,

    /// <summary>Conntrack cannot be asked on this host (no ctnetlink, no CAP_NET_ADMIN, none given): the shown port is
    /// all there is.</summary>
    Unverifiable,

    /// <summary>Conntrack answered, and its answer does not fit this connection: refuse it.</summary>
    Contradicted,
}

/// <summary>
/// Asks conntrack for the client's own endpoint behind every redirected connection, before its owner is looked up. The
/// port the accepted socket shows is the client's only when NAT did not move it; when NAT did (the client reused its
/// port towards a second destination, so the reply tuple was taken), the shown port may be any port, and a lookup of it
/// finds whatever socket sits there with the same destination: another customer's connection that no session holds (a
/// service of his that accepted a connection from her host's port 25), one whose port was itself moved, a socket she
/// left ESTABLISHED by not reading, or an exempt user's. NAT's choice of port can be steered (it takes the first free
/// port of a short run from a random start), so "rare" is not a defence. The reply tuple (listener → shown endpoint)
/// names exactly one conntrack entry, whose original tuple is the client's own endpoint: the owner lookup uses that.
/// </summary>
/// <remarks>
/// Logs at Debug only, but for a host where conntrack cannot be asked (a Warning every 15 minutes): what it found is
/// logged once the connection is attributed, by the caller.
/// </remarks>
public sealed class ClientPortCheck
{
    // A kernel without ctnetlink answers every connection the same: said once in this long, not once a connection.
    private static readonly TimeSpan UnverifiableLogInterval = TimeSpan.FromMinutes(15);

    private readonly Func<IPEndPoint, IPEndPoint, ConntrackEntry?>? _findByReply;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly AttributionMetrics? _metrics;
    private long _lastUnverifiableLog = long.MinValue;

    // Set by the first answer: from then on conntrack is known to be there, and any failure refuses the connection.
    private volatile bool _answered;

    public ClientPortCheck(ConntrackLookup? conntrack, ILogger logger, TimeProvider? time = null, AttributionMetrics? metrics = null)
        : this(conntrack is null ? null : conntrack.FindByReply, logger, time, metrics)
    {
    }

    /// <param name="findByReply">The conntrack query (<see cref="ConntrackLookup.FindByReply"/>); null: none.</param>
    /// <param name="logger">Where conntrack's contradictions (Debug) and its absence (Warning, every 15 minutes) go.</param>
    /// <param name="time">The clock of the 15-minute interval.</param>
    /// <param name="metrics">Counts every answer that leaves the shown port (<see cref="AttributionMetrics.PortUnverified"/>).</param>
    public ClientPortCheck(Func<IPEndPoint, IPEndPoint, ConntrackEntry?>? findByReply, ILogger logger, TimeProvider? time = null, AttributionMetrics? metrics = null)
    {
        _findByReply = findByReply;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _metrics = metrics;
    }

    /// <summary>
    /// The client endpoint of the connection accepted on <paramref name="listener"/> from <paramref name="shown"/> to the
    /// original <paramref name="destination"/>: conntrack's (<see cref="ClientPortAnswer.Known"/>), the shown one when
    /// conntrack cannot be asked on this host (<see cref="ClientPortAnswer.Unverifiable"/>), or none, with why
    /// (<see cref="ClientPortAnswer.Contradicted"/>).
    /// </summary>
    /// <exception cref="LinuxInteropException">Conntrack is there and this query failed (a timeout, no descriptor left,
    /// a malformed or mismatched answer): the connection is refused, never charged to the shown port's owner.</exception>
    public (ClientPortAnswer Answer, IPEndPoint Client, string? Why) ClientOf(IPEndPoint listener, IPEndPoint shown, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(listener);
        ArgumentNullException.ThrowIfNull(shown);
        ArgumentNullException.ThrowIfNull(destination);
        if (_findByReply is null)
        {
            _metrics?.PortUnverified();
            return (ClientPortAnswer.Unverifiable, shown, null);
        }

        ConntrackEntry? entry;
        try
        {
            entry = _findByReply(listener, shown);
            _answered = true;
        }
        catch (LinuxInteropException e) when (!_answered && ConntrackLookup.IsUnavailable(e))
        {
            LogUnverifiable(shown, destination, e.Message);

            // The log says it every 15 minutes; the counter lets monitoring see it for as long as it lasts.
            _metrics?.PortUnverified();
            return (ClientPortAnswer.Unverifiable, shown, null);
        }

        if (entry is null)
        {
            // A redirected connection is tracked while it lives: none means it is gone, or was never redirected.
            _logger.ConntrackNoEntry(listener, shown);
            return (ClientPortAnswer.Contradicted, shown, "conntrack has no entry for it");
        }

        var original = entry.Original;
        if (!original.Destination.Equals(MappedAddress.Unmap(destination)))
        {
            // SO_ORIGINAL_DST reads this very entry, so a difference means it changed in between.
            _logger.ConntrackOtherDestination(original.Destination, shown, destination);
            return (ClientPortAnswer.Contradicted, shown, $"conntrack's entry for it goes to {original.Destination}");
        }

        if (!original.Source.Address.Equals(MappedAddress.Unmap(shown).Address))
        {
            // NAT moves the port only; another address means the entry is not this connection's.
            _logger.ConntrackOtherClient(original.Source, shown, destination);
            return (ClientPortAnswer.Contradicted, shown, $"conntrack's entry for it comes from {original.Source}");
        }

        // The shown endpoint's form (IPv4-mapped on a dual-stack listener) with conntrack's port: what the owner lookup takes.
        return (ClientPortAnswer.Known, new IPEndPoint(shown.Address, original.Source.Port), null);
    }

    private void LogUnverifiable(IPEndPoint shown, IPEndPoint destination, string reason)
    {
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastUnverifiableLog);
        if (last != long.MinValue && _time.GetElapsedTime(last, now) < UnverifiableLogInterval)
        {
            _logger.ConntrackLookupFailed(shown, destination, reason);
            return;
        }

        if (Interlocked.CompareExchange(ref _lastUnverifiableLog, now, last) == last)
        {
            _logger.ConntrackUnverifiable(shown, destination, reason, UnverifiableLogInterval.TotalMinutes);
        }
    }
}
