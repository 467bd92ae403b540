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
/// rules to match. The kernel aborts those connections instead (SOCK_DESTROY): the scraper's gets a reset and its next
/// one reaches the daemon.
/// </summary>
/// <remarks>
/// <para>What is closed (<see cref="MetricsPortTargets"/>): another uid's listeners on the port that loopback clients
/// reach, best effort (a reuseport group answers the abort with one member only, and a listener closed this way keeps its
/// bind); then every connection on the port to a local peer that is not the daemon's. With an inode, a socket of another
/// uid. Without one (orphaned by <c>close()</c>, half-open, or waiting to be accepted), a socket has no owner the kernel
/// still knows, and kernels before 6.17 call it root's; it is taken for the daemon's when it came through the daemon's
/// listener, and closed otherwise: half-open ones themselves, the others through their peer, the client's socket, which
/// has an owner; the client's reset closes them on every kernel, where aborting an orphan itself leaves it without a
/// timer for good before 6.11. A customer's connection to another host that happens to use the port is hers, and left
/// alone.</para>
/// <para>It runs on the thread pool, never on the start's path. Each pass keeps at most <see cref="MaxPerPass"/> sockets a
/// family, counted among those it could close only; it passes again until one finds nothing, at most <see cref="MaxPasses"/>
/// times (a half-open connection completing between the dump and the abort gets a new cookie, for the next pass).</para>
/// </remarks>
public sealed class MetricsPortSweep(IPEndPoint endpoint, uint daemonUid, ILogger logger)
{
    internal const int MaxPasses = 4;
    internal const int MaxPerPass = 50_000;

    private const int Eopnotsupp = 95;
    private const int Eperm = 1;
    private const int Enoent = 2;
    private const int Estale = 116;

    private readonly Lock _lock = new();
    private bool _busy;
    private bool _again;

    /// <summary>The owner of a sub-UID's range, for the log lines (<see cref="MetricsEndpoint.SubordinateOwnerOf"/>). None by default.</summary>
    public Func<uint, Core.Attribution.SubordinateUidOwner?> SubordinateOwnerOf { get; init; } = _ => null;

    /// <summary>Sockets aborted since the start, each counted once.</summary>
    public int Closed { get; private set; }

    /// <summary>Starts a sweep on the thread pool; one running already sweeps once more after. Never throws.</summary>
    public void Request()
    {
        lock (_lock)
        {
            if (_busy)
            {
                _again = true;
                return;
            }

            _busy = true;
        }

        _ = Task.Run(Loop);
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
                    _busy = false;
                    return;
                }

                _again = false;
            }
        }
    }

    /// <summary>One sweep on the calling thread (the loop's, or a test's): passes until one finds nothing; logs what it closed and what it could not.</summary>
    internal void Run()
    {
        var closed = new Dictionary<ulong, MetricsPortTargets.Target>();
        var attempted = new HashSet<ulong>();
        var truncated = false;
        for (var pass = 0; pass < MaxPasses; pass++)
        {
            var targets = Find(ref truncated);
            if (targets is null || targets.Count == 0)
            {
                Report(closed);
                return;
            }

            IReadOnlyList<int> results;
            try
            {
                results = PortSockets.Destroy([.. targets.Select(t => t.Abort)]);
            }
            catch (LinuxInteropException e)
            {
                Report(closed);
                logger.SweepFailed(endpoint.Port, $"{MetricsPortTargets.Describe(targets, SubordinateOwnerOf)} could not be closed: {e.Message}");
                return;
            }

            for (var i = 0; i < targets.Count; i++)
            {
                attempted.Add(targets[i].Abort.Cookie);
                if (results[i] is 0)
                {
                    closed.TryAdd(targets[i].Abort.Cookie, targets[i]);
                }
            }

            var refused = results.FirstOrDefault(r => r is not (0 or Enoent or Estale));
            if (refused != 0)
            {
                // The kernel refuses them all alike (no CONFIG_INET_DIAG_DESTROY, no CAP_NET_ADMIN): another pass would too.
                Report(closed);
                logger.SweepFailed(endpoint.Port, $"{MetricsPortTargets.Describe([.. targets.Where((_, i) => results[i] == refused)], SubordinateOwnerOf)} could not be closed: {Reason(refused)}");
                return;
            }
        }

        // Every pass found something: what is there now, and whether the aborts had no effect on it or it is new.
        var left = Find(ref truncated) ?? [];
        Report(closed);
        if (left.Count > 0)
        {
            var again = left.Count(t => attempted.Contains(t.Abort.Cookie));
            var cap = truncated ? $"; a pass reads at most {MaxPerPass} sockets a family, and more were there" : "";
            logger.SweepFailed(endpoint.Port,
                $"{MetricsPortTargets.Describe(left, SubordinateOwnerOf)} were still there after {MaxPasses} passes ({again} of them tried before to no effect, such as the listeners of a SO_REUSEPORT group, of which the kernel's lookup by address reaches one a pass; the others made since{cap})");
        }
    }

    // The targets of one pass; null when the socket table could not be read (logged).
    private List<MetricsPortTargets.Target>? Find(ref bool truncated)
    {
        try
        {
            var sockets = PortSockets.OnPort(endpoint.Port, PortSockets.AllButTimeWait, MetricsPortTargets.MayBeTarget, MaxPerPass, out var cut);
            truncated |= cut;
            var peersCut = false;
            var peers = MetricsPortTargets.NeedsPeers(sockets)
                ? PortSockets.ToPort(endpoint.Port, PortSockets.AllButTimeWait, MetricsPortTargets.IsLocalClient, MaxPerPass, out peersCut)
                : [];
            truncated |= peersCut;
            return MetricsPortTargets.Find(sockets, peers, daemonUid);
        }
        catch (LinuxInteropException e)
        {
            logger.SweepFailed(endpoint.Port, "the kernel's socket table could not be read: " + e.Message);
            return null;
        }
    }

    private void Report(Dictionary<ulong, MetricsPortTargets.Target> closed)
    {
        Closed += closed.Count;
        if (closed.Count > 0)
        {
            logger.SweepClosed(endpoint.Port, MetricsPortTargets.Describe([.. closed.Values], SubordinateOwnerOf));
        }
    }

    private static string Reason(int errno) => errno switch
    {
        Eopnotsupp => "this kernel cannot close another process's sockets (built without CONFIG_INET_DIAG_DESTROY)",
        Eperm => "smtp-interceptor lacks CAP_NET_ADMIN",
        _ => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})",
    };
}
