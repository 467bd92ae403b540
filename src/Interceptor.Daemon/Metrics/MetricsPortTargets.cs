using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Net;
using Interceptor.Linux;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Which sockets on the metrics endpoint's port <see cref="MetricsPortSweep"/> closes, and through which socket, read
/// from the kernel's socket table; no kernel calls of its own, so the choice can be tested on made-up tables.
/// </summary>
internal static class MetricsPortTargets
{
    /// <summary>
    /// A socket on the port another user may hold (<see cref="Socket"/>), the uid it is held for (null: no owner known),
    /// and the socket to abort for it (<see cref="Abort"/>): itself, or for a connection without an inode its peer.
    /// </summary>
    internal readonly record struct Target(PortSocket Socket, uint? Owner, PortSocket Abort);

    /// <summary>What a dump of the port keeps: listeners, and sockets that are no TIME_WAIT minisocket with a peer on this host.</summary>
    public static bool MayBeTarget(PortSocket socket) => socket.State == TcpState.Listen || IsLocalClient(socket);

    /// <summary>A socket with a peer on this host (a loopback address, or its own address) that is no TIME_WAIT minisocket.</summary>
    public static bool IsLocalClient(PortSocket socket)
    {
        if (socket.IsTimeWait || socket.State == TcpState.Listen)
        {
            return false;
        }

        var peer = MappedAddress.Unmap(socket.Remote.Address);
        return IPAddress.IsLoopback(peer) || peer.Equals(MappedAddress.Unmap(socket.Local.Address));
    }

    /// <summary>Whether some connection on the port has no inode, so that its peer must be looked up to close it.</summary>
    public static bool NeedsPeers(IReadOnlyList<PortSocket> sockets) =>
        sockets.Any(s => IsLocalClient(s) && s.Inode == 0 && s.State != TcpState.SynReceived);

    /// <summary>
    /// What to close, listeners first: another uid's listeners that loopback clients reach; then the connections to local
    /// peers that are not the daemon's: with an inode, those of another uid, closed themselves; without one (no owner the
    /// kernel still knows), those that did not come through the daemon's listener, a half-open one itself (dropping a
    /// request socket leaves nothing behind), any other through its peer in <paramref name="peers"/> (the clients of the
    /// port), or not at all when the peer is gone: then what it sends finds no socket and is answered with a reset.
    /// </summary>
    public static List<Target> Find(IReadOnlyList<PortSocket> sockets, IReadOnlyList<PortSocket> peers, uint daemonUid)
    {
        var listeners = sockets.Where(s => s.State == TcpState.Listen).ToList();
        var found = listeners
            .Where(l => l.Uid != daemonUid && new ListeningSocket(l.Local, l.Uid, l.Inode).CanReceiveRedirected)
            .Select(l => new Target(l, l.Uid, l))
            .ToList();
        var clients = peers.ToLookup(p => (MappedAddress.Unmap(p.Local), MappedAddress.Unmap(p.Remote)));
        foreach (var socket in sockets.Where(IsLocalClient))
        {
            if (socket.Inode != 0)
            {
                if (socket.Uid != daemonUid)
                {
                    found.Add(new Target(socket, socket.Uid, socket));
                }

                continue;
            }

            // Without an inode the uid says nothing; the listener it came through (its address before a wildcard) may. One
            // that came through the daemon's is taken for the daemon's: in its queue, or closed by it and still sending.
            // Hers could be there only if she held that very address before the daemon, and a sweep then closed what she
            // had open; an orphan of hers still sending since is the rare case left, for sparing the daemon's scrapes at
            // every later sweep (each suspension's notice brings one).
            var listener = ListenerOf(socket, listeners);
            if (listener is not null && listener.Uid == daemonUid)
            {
                continue;
            }

            var owner = listener?.Uid;
            if (socket.State == TcpState.SynReceived)
            {
                found.Add(new Target(socket, owner, socket));
            }
            else if (clients[(MappedAddress.Unmap(socket.Remote), MappedAddress.Unmap(socket.Local))].FirstOrDefault() is { } peer)
            {
                found.Add(new Target(socket, owner, peer));
            }
        }

        return found;
    }

    /// <summary>"1 listener, 2 connections and 1 half-open one (of uid 1002 (alice); 1 without an owner, orphaned or not yet accepted)".</summary>
    /// <param name="targets">What was chosen, closed or left.</param>
    /// <param name="ownerOf">The owner of a sub-UID's range (<see cref="MetricsPortSweep.SubordinateOwnerOf"/>).</param>
    public static string Describe(List<Target> targets, Func<uint, Core.Attribution.SubordinateUidOwner?> ownerOf)
    {
        var listeners = targets.Count(t => t.Socket.State == TcpState.Listen);
        var halfOpen = targets.Count(t => t.Socket.State == TcpState.SynReceived);
        var connections = targets.Count - listeners - halfOpen;
        var parts = new List<string>();
        var owned = targets.Where(t => t.Owner is not null).Select(t => t.Owner!.Value).ToList();
        if (owned.Count > 0)
        {
            parts.Add($"of {MetricsEndpoint.Describe(owned, ownerOf)}");
        }

        var ownerless = targets.Count(t => t.Owner is null);
        if (ownerless > 0)
        {
            parts.Add($"{ownerless} without an owner, orphaned, half-open or not yet accepted");
        }

        return $"{Count(listeners, "listener")}, {Count(connections, "connection")} and {halfOpen} half-open ({string.Join("; ", parts)})";
    }

    private static string Count(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private static PortSocket? ListenerOf(PortSocket socket, List<PortSocket> listeners)
    {
        var address = MappedAddress.Unmap(socket.Local.Address);
        return listeners.FirstOrDefault(l => MappedAddress.Unmap(l.Local.Address).Equals(address))
            ?? listeners.FirstOrDefault(l => l.Local.Address.Equals(IPAddress.IPv6Any)
                || (l.Local.Address.Equals(IPAddress.Any) && address.AddressFamily == AddressFamily.InterNetwork));
    }
}
