using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Decide;
using Interceptor.Core.Net;
using Interceptor.Core.Replies;
using Interceptor.Linux;
using Interceptor.Smtp.Session;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Finds out where a hijacked connection was going and which Unix user opened it. Anything it cannot
/// establish is refused (fail closed): mail of unknown origin is never relayed.
/// </summary>
/// <param name="conntrack">
/// Asked for every redirected connection's own client port before its owner is looked up (see
/// <see cref="ClientPortCheck"/>); null, or a kernel that cannot answer, leaves the port the socket shows.
/// </param>
/// <param name="refusals">
/// Where refused connections are logged, aggregated per cause and uid; each refusal is also counted in
/// <paramref name="metrics"/>, one by one.
/// </param>
public sealed class ConnectionAttributor(
    SocketOwnerLookup owners, DestinationPolicy destinations, ILogger logger, RefusalLog refusals, AttributionMetrics? metrics = null, ConntrackLookup? conntrack = null)
{
    /// <summary>The client sockets of the connections located and not yet released.</summary>
    public ClientSocketClaims Claims { get; init; } = new();

    /// <summary>Gives back the client socket <see cref="Locate"/> claimed for <paramref name="located"/> (nothing for a
    /// refusal), once its connection is over.</summary>
    public void Release(LocatedConnection located)
    {
        if (located.Refusal is null && located.Destination is { } destination)
        {
            Claims.Release(located.Inode, located.Client, destination);
        }
    }

    /// <summary>
    /// The first half of attribution (<see cref="Resolve"/> the second): the kernel's answers only (the original destination, the socket's owner
    /// by netlink, conntrack), so it never waits for anything but the kernel. Either the owner's uid or the refusal. The
    /// owner's socket is claimed (<see cref="Claims"/>) until <see cref="Release"/>.
    /// </summary>
    public LocatedConnection Locate(Socket socket) => Locate(socket, quick: false)!.Value;

    /// <summary>
    /// <see cref="Locate"/> for the accepting socket thread: only the common case, conntrack's and sock_diag's netlink
    /// queries naming a redirected owner whose socket no other connection holds. Null (nothing logged, counted or claimed yet) for
    /// everything else, which may cost more and is what an attacker can make on purpose: a refusal (its owner looked up
    /// again for the log), the /proc/net/tcp fallback (a whole-file read per lookup), a lookup that failed.
    /// </summary>
    public LocatedConnection? TryLocateQuickly(Socket socket)
    {
        try
        {
            return Locate(socket, quick: true);
        }
#pragma warning disable CA1031 // whatever failed here, the pool's path does it again and answers the client
        catch (Exception)
#pragma warning restore CA1031
        {
            return null;
        }
    }

    private LocatedConnection? Locate(Socket socket, bool quick)
    {
        if (quick && owners.Method != OwnerLookupMethod.SockDiag)
        {
            return null;
        }

        var client = (IPEndPoint)socket.RemoteEndPoint!;
        if (!quick && IsGone(socket))
        {
            // Reset before we looked: no lookup is spent on it (every refusal would check again anyway, see Refuse), and
            // none can name whoever's connection has taken its tuple since. The quick path checks once its lookups are done.
            return RefuseGone(client, null, ResetBeforeKnown);
        }

        var destination = OriginalDestination.TryRead(socket);
        if (quick && (destination is null || destinations.Check(destination) is not null))
        {
            return null;
        }

        if (destination is null)
        {
            // A direct connection to the listener: the client's own socket has our listener as its remote end.
            var direct = socket.LocalEndPoint as IPEndPoint;
            var reply = new SmtpReply(421, "4.3.0", "this connection was not redirected by the interceptor; connect to the real destination's port 25");
            return Refuse(socket, "not_redirected", direct is null ? null : OwnerForLog(socket, client, direct), client, null, reply);
        }

        var refusal = destinations.Check(destination);
        if (refusal is not null)
        {
            return Refuse(socket, "local_destination", OwnerForLog(socket, client, destination), client, destination, refusal);
        }

        SocketOwner? owner;
        var orphaned = false;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            // The client's own port first (see ClientPortCheck): the shown one is a port NAT may have moved it to.
            var (answer, own, why) = socket.LocalEndPoint is IPEndPoint listener ? _ports.ClientOf(listener, client, destination) : NoListener(client);
            if (answer == ClientPortAnswer.Contradicted)
            {
                return quick ? null : Refuse(socket, "owner_unknown", null, client, destination, UnknownOrigin, why);
            }

            owner = owners.Find(own, destination, out orphaned);

            // An orphan at the shown port says nothing of this connection when conntrack could not name its own port.
            orphaned &= answer == ClientPortAnswer.Known;
            if (quick && (owner is not { } redirected || !Scope.Redirects(redirected.Uid, destination)))
            {
                return null;
            }

            if (owner is { } found && !Scope.Redirects(found.Uid, destination))
            {
                // An exempt user's (or a routed user's) direct connection: the table never redirects it, so it is not
                // this connection's client (NAT moved the shown port onto it, and conntrack could not say so).
                logger.OwnerNotRedirected(found.Uid, own, destination);
                owner = null;
            }

            if (owner is not null && !TcpConnectionState.PeerStillThere(TcpConnectionState.Of(socket)))
            {
                // Reset while it waited to be accepted or was looked up: a client's reset lets the next SYN on the same
                // tuple (a neighbour's connection, NAT-ed onto the same free port) replace its conntrack entry, which the
                // lookups above may have read, and find his socket. A socket alive here held its tuple through them (a reset
                // is final, and no new handshake completes on a tuple a live socket holds); that its entry cannot have died
                // under it some other way (a timeout, early drop) rests on sock_diag taking only a connected client socket
                // (SockDiagMessage.IsConnected) and on the claims below.
                return quick ? null : RefuseGone(client, destination, ResetBeforeKnown);
            }

            // The claim is the last thing that can happen to a connection located here: nothing after it fails, so
            // nothing (TryLocateQuickly's catch-all included) can drop a connection that still holds its socket.
            if (owner is { } live && !Claims.TryClaim(live.Inode, own, destination))
            {
                // One socket is the client of one connection (ClientSocketClaims): the other connection holding it, or
                // this one, is not who it seems. Refused, not charged to a guess; the line says whose socket it is.
                return quick ? null : Refuse(socket, "owner_unknown", live.Uid, client, destination, UnknownOrigin,
                    $"its client socket {own} is held by another live connection (the uid named is that socket's owner, not necessarily who connected)");
            }

            if (own.Port != client.Port)
            {
                // Said once, for a connection attributed: not from the quick path's try nor for a refusal.
                logger.AttributedThroughConntrack(own, destination, client.Port);
            }

            client = own;
            metrics?.OwnerLookup(System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
        catch (LinuxInteropException e)
        {
            if (quick)
            {
                return null;
            }

            return Refuse(socket, "owner_lookup_failed", null, client, destination, UnknownOrigin, $"owner lookup failed: {e.Message}", LogLevel.Error);
        }

        if (owner is null)
        {
            // Its exact client socket is there and nobody holds it: the client closed it (a connect-and-close loop makes
            // one a connection, each gone before it is looked up). No failed lookup, and no reply can reach anyone.
            return orphaned
                ? RefuseGone(client, destination, ClosedBeforeKnown)
                : Refuse(socket, "owner_unknown", null, client, destination, UnknownOrigin, "no socket owner found");
        }

        return new LocatedConnection(client, destination, owner.Value.Uid, owner.Value.Inode, null);
    }

    /// <summary>The second half of attribution: whose the owner's uid is (may block, see there).</summary>
    public (ConnectionOrigin? Origin, ulong Inode, SmtpReply? Refusal) Resolve(LocatedConnection located)
    {
        if (located.Refusal is { } refused)
        {
            return (null, 0, refused);
        }

        var (origin, refusedUid) = UidsOrDefault.Resolve(located.Uid, located.Client, located.Destination!);
        return (origin, origin is null ? 0 : located.Inode, refusedUid);
    }

    /// <summary>
    /// <see cref="Resolve"/> when it can answer from what is cached (the user's name, the /etc/subuid map checked within
    /// the second), so it can run on a socket thread; null when it would have to ask NSS or reload the file.
    /// </summary>
    public (ConnectionOrigin? Origin, ulong Inode, SmtpReply? Refusal)? TryResolveWithoutBlocking(LocatedConnection located)
    {
        if (located.Refusal is { } refused)
        {
            return (null, 0, refused);
        }

        if (!UidsOrDefault.TryResolveCached(located.Uid, located.Client, located.Destination!, out var resolved))
        {
            return null;
        }

        return (resolved.Origin, resolved.Origin is null ? 0 : located.Inode, resolved.Refusal);
    }

    // Sub-UIDs are charged to their owner, uids of nobody refused (12.4): see UidAttribution.
    private UidAttribution UidsOrDefault => Uids ?? LazyInitializer.EnsureInitialized(ref _defaultUids,
        () => new UidAttribution(new SubordinateUidFile(SubordinateUidFile.DefaultPath, logger), Core.Options.UnknownUidHandling.Refuse, logger, metrics));

    /// <summary>
    /// Counts the refusal (metrics: every one), logs it (aggregated) and returns the reply for the client; as
    /// <see cref="RefuseGone"/> when the client has reset the connection meanwhile.
    /// </summary>
    private LocatedConnection Refuse(
        Socket socket, string cause, uint? uid, IPEndPoint client, IPEndPoint? destination, SmtpReply reply, string? reason = null, LogLevel level = LogLevel.Warning)
    {
        // Whatever the lookups found for a reset connection may be another's (see RefuseGone), and its refusal must not
        // count as a failed lookup: a customer's connect-and-reset loop would raise the owner_unknown alert at will.
        return IsGone(socket) ? RefuseGone(client, destination, ResetBeforeKnown) : RecordRefusal(cause, uid, client, destination, reply, reason, level);
    }

    /// <summary>
    /// Refuses a connection whose client left before its owner was known (reset it, or closed its socket): at
    /// Information, naming nobody (a reset one's tuple may already be another connection's, so any owner found may be
    /// his), counted apart from the failed lookups.
    /// </summary>
    private LocatedConnection RefuseGone(IPEndPoint client, IPEndPoint? destination, string why) =>
        RecordRefusal(ClientGoneCause, null, client, destination, ClientGone, why, LogLevel.Information);

    private const string ResetBeforeKnown = "the client reset the connection before its owner was known (its tuple may already be another connection's)";
    private const string ClosedBeforeKnown = "the client closed its socket before its owner was known (nobody holds it any more)";

    // A socket whose state cannot be read is taken as alive: its refusal stays what the lookups made it.
    private static bool IsGone(Socket socket)
    {
        try
        {
            return !TcpConnectionState.PeerStillThere(TcpConnectionState.Of(socket));
        }
        catch (LinuxInteropException)
        {
            return false;
        }
    }

    private LocatedConnection RecordRefusal(
        string cause, uint? uid, IPEndPoint client, IPEndPoint? destination, SmtpReply reply, string? reason, LogLevel level)
    {
        // A failed lookup is its own cause in the log (a fault, at Error); the metric keeps counting it as owner_unknown, as it always did.
        metrics?.ConnectionRefused(cause == "owner_lookup_failed" ? "owner_unknown" : cause);
        var (charged, note) = UidsOrDefault.ChargedForLog(uid);
        reason ??= reply.Text;
        refusals.Refused(cause, charged, client, destination, note is null ? reason : $"{reason}; {note}", level);
        return new LocatedConnection(client, destination, 0, 0, reply);
    }

    /// <summary>
    /// The uid behind a connection that is refused anyway, only to name it in the log: the exact lookup of the
    /// client's socket (its own port, as conntrack names it, → <paramref name="remote"/>). Null when it cannot be found.
    /// </summary>
    private uint? OwnerForLog(Socket socket, IPEndPoint client, IPEndPoint remote)
    {
        try
        {
            var (answer, own, _) = socket.LocalEndPoint is IPEndPoint listener ? _ports.ClientOf(listener, client, remote) : NoListener(client);
            return answer == ClientPortAnswer.Contradicted ? null : owners.Find(own, remote)?.Uid;
        }
        catch (LinuxInteropException)
        {
            return null;
        }
    }

    /// <summary>
    /// Who is at the other end of a direct loopback connection to one of the daemon's own listeners (the metrics
    /// endpoint): the owner of the peer's socket, a sub-UID charged to the owner of its range; null when not found. Reads
    /// /etc/subuid when due: not for a socket thread.
    /// </summary>
    public uint? DirectPeerOwner(Socket socket)
    {
        try
        {
            if (socket.RemoteEndPoint is not IPEndPoint peer || socket.LocalEndPoint is not IPEndPoint local)
            {
                return null;
            }

            return owners.Find(peer, local) is { } owner ? UidsOrDefault.ChargedForLog(owner.Uid).Uid : null;
        }
        catch (Exception e) when (e is LinuxInteropException or SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    private UidAttribution? _defaultUids;

    /// <summary>Whose sockets can be the client of a redirected connection (not the exempt users', nor a route's).</summary>
    public RedirectScope Scope { get; init; } = RedirectScope.Everybody;

    /// <summary>Who a socket's uid is charged to; when not set, /etc/subuid with unknown uids refused.</summary>
    public UidAttribution? Uids { get; init; }

    /// <summary>Who the client of a redirected connection is, by conntrack (see <see cref="ClientPortCheck"/>).</summary>
    private readonly ClientPortCheck _ports = new(conntrack, logger, metrics: metrics);

    // Without the listener's address there is no reply tuple to ask conntrack by: refused, never the shown port trusted.
    private static (ClientPortAnswer, IPEndPoint, string?) NoListener(IPEndPoint client) =>
        (ClientPortAnswer.Contradicted, client, "the accepted socket names no local address to ask conntrack by");

    private const string ClientGoneCause = "client_gone";

    // Nobody reads it (the connection is reset); the reply the session would write anyway.
    private static readonly SmtpReply ClientGone = new(421, "4.3.0", "the client left before the connection was attributed");

    private static readonly SmtpReply UnknownOrigin =
        new(421, "4.3.0", "cannot determine which user opened this connection; mail of unknown origin is not relayed");
}

/// <summary>A connection's client, original destination and owner as the kernel tells them, or the reply refusing it.</summary>
public readonly record struct LocatedConnection(IPEndPoint Client, IPEndPoint? Destination, uint Uid, ulong Inode, SmtpReply? Refusal);
