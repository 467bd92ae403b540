using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Core.Net;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Closes, each time the table is installed, the connections another user's socket holds on the metrics endpoint's port
/// towards a local client. The table's answer rules drop what another user's socket sends from that port, and every
/// SYN-ACK that is not the daemon's, so no connection to a customer's listener on the port completes once they are in; but
/// a connection made while the table had none of them (Metrics.Listen set while a scraper already scraped that port, the
/// ruleset flushed while the daemon was down) is open already. The scraper's requests, its token with them, still reach
/// her socket there, and what she sends after <c>close()</c> leaves from an orphaned socket, which has no owner for the
/// rules to match. The kernel aborts those sockets instead (SOCK_DESTROY): the scraper's connection gets a reset and its
/// next one reaches the daemon.
/// </summary>
/// <remarks>
/// Only sockets whose peer is on this host (a loopback address, or the socket's own address): a customer's outgoing
/// connection that happens to use the port towards another host is hers, and no scraper's. A listener is left alone (the
/// rules make it useless for the port); its half-open connections are dropped. Nothing here runs without Metrics.Listen.
/// </remarks>
public sealed class MetricsPortSweep(IPEndPoint endpoint, uint daemonUid, ILogger logger)
{
    private const int Eopnotsupp = 95;
    private const int Eperm = 1;
    private const int Enoent = 2;
    private const int Estale = 116;

    /// <summary>Sockets aborted since the start.</summary>
    public int Closed { get; private set; }

    /// <summary>Looks for such connections and has the kernel abort them; logs what it closed and what it could not. Never throws.</summary>
    public void Run()
    {
        List<(PortSocket Socket, uint Owner)> foreign;
        try
        {
            foreign = Foreign(PortSockets.OnPort(endpoint.Port, PortSockets.AllButTimeWait), daemonUid);
        }
        catch (LinuxInteropException e)
        {
            logger.SweepFailed(endpoint.Port, "the kernel's socket table could not be read: " + e.Message);
            return;
        }

        if (foreign.Count == 0)
        {
            return;
        }

        IReadOnlyList<int> results;
        try
        {
            results = PortSockets.Destroy([.. foreign.Select(f => f.Socket)]);
        }
        catch (LinuxInteropException e)
        {
            logger.SweepFailed(endpoint.Port, $"{foreign.Count} connections held by {Owners(foreign)} could not be closed: {e.Message}");
            return;
        }

        var closed = foreign.Where((_, i) => results[i] is 0).ToList();
        var failed = foreign.Where((_, i) => results[i] is not (0 or Enoent or Estale)).ToList();
        Closed += closed.Count;
        if (closed.Count > 0)
        {
            logger.SweepClosed(closed.Count, endpoint.Port, Owners(closed));
        }

        if (failed.Count > 0)
        {
            var errno = results.First(r => r is not (0 or Enoent or Estale));
            logger.SweepFailed(endpoint.Port, $"{failed.Count} connections held by {Owners(failed)} could not be closed: {Reason(errno)}");
        }
    }

    /// <summary>
    /// The sockets to abort, each with the uid it is held for: another uid's connections (states other than LISTEN and
    /// request) whose peer is on this host, and the request sockets of another uid's listener.
    /// </summary>
    internal static List<(PortSocket Socket, uint Owner)> Foreign(IReadOnlyList<PortSocket> sockets, uint daemonUid)
    {
        // A request socket carries no owner of its own; its listener (the one on its address, or a wildcard) does.
        var listeners = sockets.Where(s => s.State == TcpState.Listen).ToList();
        var found = new List<(PortSocket, uint)>();
        foreach (var socket in sockets)
        {
            switch (socket.State)
            {
                case TcpState.Listen:
                    break;
                case TcpState.NewSynReceived:
                    if (listeners.FirstOrDefault(l => Covers(l.Local.Address, socket.Local.Address)) is { } listener && listener.Uid != daemonUid)
                    {
                        found.Add((socket, listener.Uid));
                    }

                    break;
                default:
                    if (socket.Uid != daemonUid && PeerIsLocal(socket))
                    {
                        found.Add((socket, socket.Uid));
                    }

                    break;
            }
        }

        return found;
    }

    private static bool PeerIsLocal(PortSocket socket)
    {
        var peer = MappedAddress.Unmap(socket.Remote.Address);
        return IPAddress.IsLoopback(peer) || peer.Equals(MappedAddress.Unmap(socket.Local.Address));
    }

    private static bool Covers(IPAddress listener, IPAddress address)
    {
        var bound = MappedAddress.Unmap(listener);
        return bound.Equals(IPAddress.Any) || bound.Equals(IPAddress.IPv6Any) || bound.Equals(MappedAddress.Unmap(address));
    }

    private static string Owners(List<(PortSocket Socket, uint Owner)> sockets) => MetricsEndpoint.Describe(sockets.Select(s => s.Owner));

    private static string Reason(int errno) => errno switch
    {
        Eopnotsupp => "this kernel cannot close another process's sockets (built without CONFIG_INET_DIAG_DESTROY)",
        Eperm => "smtp-interceptor lacks CAP_NET_ADMIN",
        _ => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})",
    };
}
