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
/// Asked only when the exact owner lookup finds nothing (or a socket that cannot be this connection's client: an exempt
/// user's, or one another connection holds), to recover a client port that NAT moved (see <see cref="FindRemapped"/>);
/// null disables that recovery.
/// </param>
/// <param name="refusals">
/// Where refused connections are logged, aggregated per cause and uid; each refusal is also counted in
/// <paramref name="metrics"/>, one by one.
/// </param>
public sealed class ConnectionAttributor(
    SocketOwnerLookup owners, DestinationPolicy destinations, ILogger logger, RefusalLog refusals, AttributionMetrics? metrics = null, ConntrackLookup? conntrack = null)
{
    /// <summary>Either the origin of the connection (and its socket inode), or the reply that refuses it.</summary>
    /// <remarks>May block: the user database (NSS) and a reload of /etc/subuid. See <see cref="TryResolveWithoutBlocking"/>.
    /// The client socket stays claimed: <see cref="Release"/> it once the connection is over.</remarks>
    public (ConnectionOrigin? Origin, ulong Inode, SmtpReply? Refusal) Attribute(Socket socket) => Resolve(Locate(socket));

    /// <summary>The client sockets of the connections located and not yet released.</summary>
    public ClientSocketClaims Claims { get; init; } = new();

    /// <summary>Gives back the client socket <see cref="Locate"/> claimed for <paramref name="located"/> (nothing for a
    /// refusal), once its connection is over.</summary>
    public void Release(LocatedConnection located)
    {
        if (located.Refusal is null)
        {
            Claims.Release(located.Inode);
        }
    }

    /// <summary>
    /// The first half of <see cref="Attribute"/>: the kernel's answers only (the original destination, the socket's owner
    /// by netlink, conntrack), so it never waits for anything but the kernel. Either the owner's uid or the refusal. The
    /// owner's socket is claimed (<see cref="Claims"/>) until <see cref="Release"/>.
    /// </summary>
    public LocatedConnection Locate(Socket socket) => Locate(socket, quick: false)!.Value;

    /// <summary>
    /// <see cref="Locate"/> for the accepting socket thread: only the common case, one netlink query that names a
    /// redirected owner whose socket no other connection holds. Null (nothing logged, counted or claimed yet) for
    /// everything else, which may cost more and is what an attacker can make on purpose: a refusal (its owner looked up
    /// again for the log), conntrack for a port NAT moved, the /proc/net/tcp fallback (a whole-file read per lookup), a
    /// lookup that failed.
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
            return Refuse("not_redirected", direct is null ? null : OwnerForLog(socket, client, direct), client, null, reply);
        }

        var refusal = destinations.Check(destination);
        if (refusal is not null)
        {
            return Refuse("local_destination", OwnerForLog(socket, client, destination), client, destination, refusal);
        }

        SocketOwner? owner;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            owner = owners.Find(client, destination);
            if (quick && (owner is not { } redirected || !Scope.Redirects(redirected.Uid, destination)))
            {
                return null;
            }

            if (owner is { } found && !Scope.Redirects(found.Uid, destination))
            {
                // An exempt user's (or a routed user's) direct connection sharing the 4-tuple: NAT moved the real
                // client's port onto it. Never theirs; conntrack names the real port, or the connection is refused.
                logger.OwnerNotRedirected(found.Uid, client, destination);
                owner = null;
            }

            if (owner is { } live && !Claims.TryClaim(live.Inode))
            {
                // Another live connection's client: NAT moved this one's port onto that socket's (see ClientSocketClaims).
                if (quick)
                {
                    return null;
                }

                logger.OwnerSocketClaimed(live.Uid, client, destination);
                owner = null;
            }

            if (owner is null && FindRemapped(socket, client, destination) is { } remapped)
            {
                // Conntrack names this connection's own client; if another connection holds that socket, one of the two
                // is wrong, and this one is refused rather than charged to a guess.
                if (Claims.TryClaim(remapped.Owner.Inode))
                {
                    (client, owner) = remapped;
                }
                else
                {
                    logger.OwnerSocketClaimed(remapped.Owner.Uid, remapped.Client, destination);
                }
            }

            metrics?.OwnerLookup(System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
        catch (LinuxInteropException e)
        {
            if (quick)
            {
                return null;
            }

            var failed = new SmtpReply(421, "4.3.0", "cannot determine which user opened this connection; mail of unknown origin is not relayed");
            return Refuse("owner_lookup_failed", null, client, destination, failed, $"owner lookup failed: {e.Message}", LogLevel.Error);
        }

        if (owner is null)
        {
            var unknown = new SmtpReply(421, "4.3.0", "cannot determine which user opened this connection; mail of unknown origin is not relayed");
            return Refuse("owner_unknown", null, client, destination, unknown, "no socket owner found");
        }

        return new LocatedConnection(client, destination, owner.Value.Uid, owner.Value.Inode, null);
    }

    /// <summary>The second half of <see cref="Attribute"/>: whose the owner's uid is (may block, see there).</summary>
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

    /// <summary>Counts the refusal (metrics: every one), logs it (aggregated) and returns the reply for the client.</summary>
    private LocatedConnection Refuse(
        string cause, uint? uid, IPEndPoint client, IPEndPoint? destination, SmtpReply reply, string? reason = null, LogLevel level = LogLevel.Warning)
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
    /// client's socket (<paramref name="client"/> → <paramref name="remote"/>), or of its real port when NAT
    /// moved it (a flood reusing ports makes that common). Null when it cannot be found.
    /// </summary>
    private uint? OwnerForLog(Socket socket, IPEndPoint client, IPEndPoint remote)
    {
        try
        {
            return (owners.Find(client, remote) ?? FindRemapped(socket, client, remote, quiet: true)?.Owner)?.Uid;
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

    /// <summary>
    /// When a client reuses its port P towards a second destination while conntrack still tracks the
    /// first connection (same reply tuple: listener → client:P), NAT moves the new connection to
    /// another port P', and the accepted socket shows P' where the client's socket has P. The reply
    /// tuple (listener → client:P') names exactly one conntrack entry, whose original tuple gives P;
    /// the exact lookup is then repeated with it. Returns null (the caller fails closed) whenever
    /// conntrack cannot answer or its answer does not fit what the socket itself says.
    /// </summary>
    /// <exception cref="LinuxInteropException">The repeated owner lookup failed.</exception>
    /// <param name="quiet">No information line: the connection is refused anyway, and its refusal is logged (aggregated).</param>
    private (IPEndPoint Client, SocketOwner Owner)? FindRemapped(Socket socket, IPEndPoint shown, IPEndPoint destination, bool quiet = false)
    {
        if (conntrack is null || socket.LocalEndPoint is not IPEndPoint listener)
        {
            return null;
        }

        ConntrackEntry? entry;
        try
        {
            entry = conntrack.FindByReply(listener, shown);
        }
        catch (LinuxInteropException e)
        {
            // Typically no ctnetlink in this kernel or no CAP_NET_ADMIN: today's refusal stands.
            logger.ConntrackLookupFailed(shown, destination, e.Message);
            return null;
        }

        if (entry is null)
        {
            logger.ConntrackNoEntry(listener, shown);
            return null;
        }

        var original = entry.Original;
        if (!original.Destination.Equals(MappedAddress.Unmap(destination)))
        {
            // SO_ORIGINAL_DST reads this very entry, so a difference means it changed in between.
            logger.ConntrackOtherDestination(original.Destination, shown, destination);
            return null;
        }

        if (!original.Source.Address.Equals(MappedAddress.Unmap(shown).Address))
        {
            // NAT moved the port only; another address means the entry is not this connection's.
            logger.ConntrackOtherClient(original.Source, shown, destination);
            return null;
        }

        if (original.Source.Equals(MappedAddress.Unmap(shown)))
        {
            logger.ConntrackNoRemap(shown, destination);
            return null;
        }

        // The same exact, connected-socket-only lookup as for any connection (never a listener's uid), and again never
        // a socket that the table would not have redirected.
        if (owners.Find(original.Source, destination) is not { } owner || !Scope.Redirects(owner.Uid, destination))
        {
            logger.RemappedOwnerNotFound(original.Source, destination, shown);
            return null;
        }

        if (!quiet)
        {
            logger.AttributedThroughConntrack(original.Source, destination, shown.Port);
        }

        return (original.Source, owner);
    }

}

/// <summary>A connection's client, original destination and owner as the kernel tells them, or the reply refusing it.</summary>
public readonly record struct LocatedConnection(IPEndPoint Client, IPEndPoint? Destination, uint Uid, ulong Inode, SmtpReply? Refusal);
