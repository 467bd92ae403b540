using System.Globalization;
using System.Net.Sockets;
using Interceptor.Daemon.Decide;
using Interceptor.Daemon.Maintenance;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>Why the redirect must not point at the listener port now; <see cref="Uid"/> is a foreign listener's owner.</summary>
public sealed record ListenerProblem(string Reason, uint? Uid, string? User);

/// <summary>
/// Issue 12.1: the nft redirect hands every customer's port-25 connection to whatever listens on <c>Listen.Port</c>, so
/// that socket must be ours and nobody else may be able to take the port when we stop. Two checks: the port is below
/// net.ipv4.ip_unprivileged_port_start in our network namespace (only root or CAP_NET_BIND_SERVICE can bind it), and
/// every socket listening on it where a redirected connection could land is one of our listener sockets (uid and inode).
/// When either fails the table goes into lockdown (no redirect: the guard table refuses), see <see cref="TableWatchdog"/>.
/// </summary>
public sealed class ListenerGuard(int port, Func<IReadOnlyList<Socket>> ourSockets, AlertCommand alert, ILogger logger)
{
    private readonly uint _ourUid = UserDatabase.EffectiveUid;

    /// <summary>The sysctl check alone: the reason the port is unsafe, or null. Also used by check-config and rules.</summary>
    public static string? UnprivilegedPortProblem(int port, Func<int>? readStart = null)
    {
        int start;
        try
        {
            start = (readStart ?? (() => UnprivilegedPorts.Start()))();
        }
        catch (LinuxInteropException e)
        {
            // Unknown means unsafe: a redirect must never point at a port we cannot show to be privileged.
            return $"Listen.Port {port} cannot be shown to be privileged: {e.Message}";
        }

        if (UnprivilegedPorts.IsPrivileged(port, start))
        {
            return null;
        }

        var advice = start <= 1
            ? $"so every port is open to every user (as in many containers); raise the sysctl above {port} (1024 is the kernel's default)"
            : $"so only ports below {start} are privileged; use a port below {start} (the default is 24) or raise the sysctl above {port}";
        return string.Create(CultureInfo.InvariantCulture,
            $"Listen.Port {port} can be bound by any local user: {UnprivilegedPorts.SysctlName} is {start} in this network namespace, {advice}");
    }

    /// <summary>Who else listens on the port where redirected connections could land ("uid 1002 (bob) on 127.0.0.1:24 inode 123"), or null.</summary>
    public static ListenerProblem? ForeignListenerProblem(int port, uint ourUid, IReadOnlySet<ulong> ourInodes)
    {
        var foreign = ListeningSockets.FindForeign(port, ourUid, ourInodes);
        if (foreign.Count == 0)
        {
            return null;
        }

        var first = foreign[0];
        var user = UserDatabase.NameOf(first.Uid);
        var described = string.Join("; ", foreign.Select(s => $"uid {s.Uid} ({UserDatabase.NameOf(s.Uid) ?? "no user name"}) on {s}"));
        return new ListenerProblem($"another socket listens on the listener port {port}: {described}", first.Uid, user);
    }

    /// <summary>
    /// Every check; null when the redirect may point at the listener port. When the listeners cannot be listed,
    /// <paramref name="current"/> stands: a failed check neither starts nor lifts a lockdown.
    /// </summary>
    public ListenerProblem? FindProblem(ListenerProblem? current)
    {
        if (UnprivilegedPortProblem(port) is { } unprivileged)
        {
            return new ListenerProblem(unprivileged, null, null);
        }

        try
        {
            var inodes = ourSockets().Select(ListeningSockets.InodeOf).ToHashSet();
            return ForeignListenerProblem(port, _ourUid, inodes);
        }
        catch (Exception e) when (e is LinuxInteropException or ObjectDisposedException)
        {
            // A netlink fault (or our listeners closing at shutdown) says nothing about who listens; the sysctl check
            // above still holds, so keep the current table.
            logger.CannotListListeners(port, e.Message);
            return current;
        }
    }

    /// <summary>Logs the lockdown as an error and runs Alerts.Command (SMTPI_SOURCE=listener).</summary>
    public async Task ReportLockdownAsync(ListenerProblem problem, string table, IReadOnlyList<int> ports, CancellationToken cancellationToken)
    {
        logger.Lockdown(problem.Reason, table, string.Join(",", ports), port);
        await alert.NotifyListenerAsync("lockdown: " + problem.Reason, problem.Uid, problem.User, DateTimeOffset.UtcNow, cancellationToken);
    }

    /// <summary>Logs and alerts that the redirect is back.</summary>
    public async Task ReportLiftedAsync(string previousReason, string table, CancellationToken cancellationToken)
    {
        logger.LockdownLifted(port, previousReason, table);
        await alert.NotifyListenerAsync($"lockdown lifted: port {port} is ours alone again (was: {previousReason})", null, null, DateTimeOffset.UtcNow, cancellationToken);
    }
}
