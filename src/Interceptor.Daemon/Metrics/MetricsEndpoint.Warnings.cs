using System.Globalization;
using System.Net;
using Interceptor.Linux;

namespace Interceptor.Daemon.Metrics;

/// <summary>What an admin should hear at start about Metrics.Listen.</summary>
public sealed partial class MetricsEndpoint
{
    private const string SyncookiesSysctl = "net/ipv4/tcp_syncookies";
    private const string LocalPortRangeSysctl = "net/ipv4/ip_local_port_range";
    private const string ReservedPortsSysctl = "net/ipv4/ip_local_reserved_ports";

    /// <summary>
    /// What an admin should hear at start about Metrics.Listen:
    /// <list type="bullet">
    /// <item>only root may scrape while Metrics.ScraperUsers is empty (the kernel resets everyone else's connection, a
    /// Prometheus running as its own user included);</item>
    /// <item>a port any local user may bind can be taken while the daemon restarts;</item>
    /// <item>with net.ipv4.tcp_syncookies at 2 every SYN-ACK is a syncookie one, which has no socket: the table drops the
    /// daemon's too, so no scrape connects;</item>
    /// <item>a port connect() may pick as a source port (inside ip_local_port_range, not reserved): the table drops the
    /// SYN of a local connection given it while the endpoint does not hold the port.</item>
    /// </list>
    /// <paramref name="readStart"/> and <paramref name="readSysctl"/> (the text of /proc/sys/PATH, null when there is
    /// none) stand in for the kernel in tests.
    /// </summary>
    public static IEnumerable<string> Warnings(
        IPEndPoint endpoint, IReadOnlyCollection<uint> scrapers, Func<int>? readStart = null, Func<string, string?>? readSysctl = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(scrapers);
        readSysctl ??= ReadSysctl;
        if (scrapers.All(uid => uid == 0))
        {
            yield return $"metrics: only root may connect to http://{endpoint}/metrics (Metrics.ScraperUsers is empty): the kernel resets every other user's connection; name the user your Prometheus runs as there";
        }

        string? unprivileged;
        try
        {
            var start = (readStart ?? (() => UnprivilegedPorts.Start()))();
            unprivileged = UnprivilegedPorts.IsPrivileged(endpoint.Port, start) ? null : $"{UnprivilegedPorts.SysctlName} is {start}";
        }
        catch (LinuxInteropException e)
        {
            unprivileged = $"{UnprivilegedPorts.SysctlName} could not be read: {e.Message}";
        }

        if (unprivileged is not null)
        {
            yield return $"metrics: port {endpoint.Port} may be bound by any local user ({unprivileged}): a customer who takes it while the daemon restarts keeps the endpoint down and every scrape fails until she lets go (the kernel drops her answers); give Metrics.Listen a free port below 1024";
        }

        if (readSysctl(SyncookiesSysctl)?.Trim() == "2")
        {
            yield return $"metrics: net.ipv4.tcp_syncookies is 2, so the kernel answers every connection with a syncookie SYN-ACK, which has no socket; the table drops every SYN-ACK from port {endpoint.Port} that is not of smtp-interceptor's socket, so no scrape connects. Set it to 1 (the default)";
        }

        if (ConnectMayPick(endpoint.Port, readSysctl(LocalPortRangeSysctl), readSysctl(ReservedPortsSysctl)) is { } range)
        {
            yield return $"metrics: port {endpoint.Port} is inside net.ipv4.ip_local_port_range ({range}): while the endpoint does not hold it (the daemon stopped), the kernel may give it to a local connection as its source port, and the table drops that connection's SYN over lo. Give Metrics.Listen a port outside the range, or add it to net.ipv4.ip_local_reserved_ports";
        }
    }

    // The range as the sysctl shows it when connect() may pick the port, null otherwise (or when the sysctls cannot be read).
    private static string? ConnectMayPick(int port, string? range, string? reserved)
    {
        var bounds = range?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (bounds is not [var low, var high] || !int.TryParse(low, CultureInfo.InvariantCulture, out var from)
            || !int.TryParse(high, CultureInfo.InvariantCulture, out var to) || port < from || port > to)
        {
            return null;
        }

        // ip_local_reserved_ports: "8080,9000-9010", empty when none.
        foreach (var part in (reserved ?? "").Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var (first, last) = part.Split('-') is [var a, var b] ? (a, b) : (part, part);
            if (int.TryParse(first, CultureInfo.InvariantCulture, out var start) && int.TryParse(last, CultureInfo.InvariantCulture, out var end)
                && port >= start && port <= end)
            {
                return null;
            }
        }

        return $"{from}-{to}";
    }

    private static string? ReadSysctl(string path)
    {
        try
        {
            return File.ReadAllText("/proc/sys/" + path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
