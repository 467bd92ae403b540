using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Core.Net;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Closes, after the table is installed or heard to change, what another user's socket holds on the metrics endpoint's
/// port towards local clients. The table's answer rules drop what another user's socket sends from that port, and every
/// SYN-ACK that is not the daemon's, so no connection to a customer's listener on the port completes once they are in; but
/// a connection made while the table had none of them (Metrics.Listen set while a scraper already scraped that port, the
/// ruleset flushed while the daemon was down) is open already. The scraper's requests, its token with them, still reach
/// her socket there, and what she sends after <c>close()</c> leaves from an orphaned socket, which has no owner for the
/// rules to match. The kernel aborts those sockets instead (SOCK_DESTROY): the scraper's connection gets a reset and its
/// next one reaches the daemon.
/// </summary>
/// <remarks>
/// <para>What is closed: another uid's listeners on the port that loopback clients can reach (first: that drops every
/// connection still in their queues at once, so none can be accepted later), then every connection on the port whose
/// peer is on this host (a loopback address, or the socket's own) and that is not provably the daemon's. Provably the
/// daemon's means of its uid with an inode: a socket without one (orphaned, half-open, waiting to be accepted) has no
/// owner the kernel still knows, and older kernels report it as root's, so it is closed whoever made it. That can cost the
/// daemon a scrape in flight at that moment; the sweep runs only after the table changed. A customer's connection to
/// another host that happens to use the port is hers, and left alone.</para>
/// <para>It runs on the thread pool, never on the start's path: a port padded with a great many sockets costs the sweep
/// time, not the daemon's start. Each pass reads at most <see cref="MaxPerPass"/> sockets; it passes again until one finds
/// nothing, at most <see cref="MaxPasses"/> times (a half-open connection completing between the dump and the abort gets a
/// new cookie and is caught by the next pass).</para>
/// </remarks>
public sealed class MetricsPortSweep(IPEndPoint endpoint, uint daemonUid, ILogger logger)
{
    internal const int MaxPasses = 4;
    internal const int MaxPerPass = 20_000;

    private const int Eopnotsupp = 95;
    private const int Eperm = 1;
    private const int Enoent = 2;
    private const int Estale = 116;

    private readonly Lock _lock = new();
    private Task _running = Task.CompletedTask;
    private bool _again;

    /// <summary>Sockets aborted since the start.</summary>
    public int Closed { get; private set; }

    /// <summary>The sweep in progress, or the last one; for tests.</summary>
    public Task Running
    {
        get
        {
            lock (_lock)
            {
                return _running;
            }
        }
    }

    /// <summary>Starts a sweep on the thread pool; one running already sweeps once more after. Never throws.</summary>
    public void Request()
    {
        lock (_lock)
        {
            if (!_running.IsCompleted)
            {
                _again = true;
                return;
            }

            _running = Task.Run(Loop);
        }
    }

    private void Loop()
    {
        while (true)
        {
            try
            {
                Run();
            }
#pragma warning disable CA1031 // a sweep that failed is logged; it must never take the daemon down
            catch (Exception e)
#pragma warning restore CA1031
            {
                logger.SweepFailed(endpoint.Port, e.Message);
            }

            lock (_lock)
            {
                if (!_again)
                {
                    return;
                }

                _again = false;
            }
        }
    }

    /// <summary>One sweep, on the calling thread: passes until one finds nothing; logs what it closed and what it could not.</summary>
    public void Run()
    {
        var closed = new List<Candidate>();
        List<Candidate> left = [];
        for (var pass = 0; pass < MaxPasses; pass++)
        {
            IReadOnlyList<PortSocket> sockets;
            try
            {
                sockets = PortSockets.OnPort(endpoint.Port, PortSockets.AllButTimeWait, MaxPerPass);
            }
            catch (LinuxInteropException e)
            {
                logger.SweepFailed(endpoint.Port, "the kernel's socket table could not be read: " + e.Message);
                break;
            }

            left = Foreign(sockets, daemonUid);
            if (left.Count == 0)
            {
                break;
            }

            var results = PortSockets.Destroy([.. left.Select(c => c.Socket)]);
            closed.AddRange(left.Where((_, i) => results[i] is 0));
            var failed = left.Where((_, i) => results[i] is not (0 or Enoent or Estale)).ToList();
            if (failed.Count > 0)
            {
                // The kernel refuses them all alike (no CONFIG_INET_DIAG_DESTROY, no CAP_NET_ADMIN): another pass would too.
                logger.SweepFailed(endpoint.Port, $"{Describe(failed)} could not be closed: {Reason(results.First(r => r is not (0 or Enoent or Estale)))}");
                left = [];
                break;
            }
        }

        Closed += closed.Count;
        if (closed.Count > 0)
        {
            logger.SweepClosed(endpoint.Port, Describe(closed));
        }

        if (left.Count > 0)
        {
            logger.SweepFailed(endpoint.Port, $"{Describe(left)} were still there after {MaxPasses} passes (an orphaned socket a kernel before 6.11 does not close, or more sockets than a pass reads)");
        }
    }

    /// <summary>
    /// What to close, listeners first, each with the uid it is held for (null: no owner known): another uid's listeners that
    /// loopback clients can reach, and the connections to local peers that are not provably the daemon's.
    /// </summary>
    internal static List<Candidate> Foreign(IReadOnlyList<PortSocket> sockets, uint daemonUid)
    {
        var listeners = sockets.Where(s => s.State == TcpState.Listen).ToList();
        var found = listeners
            .Where(l => l.Uid != daemonUid && ReachableFromLoopback(l.Local.Address))
            .Select(l => new Candidate(l, l.Uid))
            .ToList();
        foreach (var socket in sockets)
        {
            if (socket.State == TcpState.Listen || socket.IsTimeWait || !PeerIsLocal(socket) || (socket.Inode != 0 && socket.Uid == daemonUid))
            {
                continue;
            }

            // Without an inode the uid says nothing; the listener it came through (its address before a wildcard) may.
            var owner = socket.Inode != 0 ? socket.Uid : ListenerOf(socket, listeners)?.Uid;
            found.Add(new Candidate(socket, owner == daemonUid ? null : owner));
        }

        return found;
    }

    private static PortSocket? ListenerOf(PortSocket socket, List<PortSocket> listeners)
    {
        var address = MappedAddress.Unmap(socket.Local.Address);
        return listeners.FirstOrDefault(l => MappedAddress.Unmap(l.Local.Address).Equals(address))
            ?? listeners.FirstOrDefault(l => l.Local.Address.Equals(IPAddress.IPv6Any) || (l.Local.Address.Equals(IPAddress.Any) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork));
    }

    private static bool ReachableFromLoopback(IPAddress bound)
    {
        var address = MappedAddress.Unmap(bound);
        return IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
    }

    private static bool PeerIsLocal(PortSocket socket)
    {
        var peer = MappedAddress.Unmap(socket.Remote.Address);
        return IPAddress.IsLoopback(peer) || peer.Equals(MappedAddress.Unmap(socket.Local.Address));
    }

    // "2 listeners and 3 connections of uid 1002 (alice), 1 connection without an owner (orphaned, half-open or not yet accepted)"
    private static string Describe(List<Candidate> candidates)
    {
        var listeners = candidates.Count(c => c.Socket.State == TcpState.Listen);
        var connections = candidates.Count - listeners;
        var owned = candidates.Where(c => c.Owner is not null).Select(c => c.Owner!.Value).ToList();
        var ownerless = candidates.Count(c => c.Owner is null);
        var parts = new List<string>();
        if (owned.Count > 0)
        {
            parts.Add($"of {MetricsEndpoint.Describe(owned)}");
        }

        if (ownerless > 0)
        {
            parts.Add($"{ownerless} without an owner (orphaned, half-open or not yet accepted)");
        }

        return $"{listeners} listeners and {connections} connections ({string.Join("; ", parts)})";
    }

    private static string Reason(int errno) => errno switch
    {
        Eopnotsupp => "this kernel cannot close another process's sockets (built without CONFIG_INET_DIAG_DESTROY)",
        Eperm => "smtp-interceptor lacks CAP_NET_ADMIN",
        _ => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})",
    };

    /// <summary>A socket to close and the uid it is held for; null when no owner is known.</summary>
    internal readonly record struct Candidate(PortSocket Socket, uint? Owner);
}
