using System.Globalization;

namespace Interceptor.Linux;

/// <summary>
/// net.ipv4.ip_unprivileged_port_start: the lowest port any user may bind (IPv4 and IPv6 alike). Ports below it need
/// root or CAP_NET_BIND_SERVICE. It is per network namespace, and /proc/sys shows the value of the reading process's
/// namespace, which is why the daemon reads it itself rather than trusting the host's value.
/// </summary>
public static class UnprivilegedPorts
{
    public const string SysctlName = "net.ipv4.ip_unprivileged_port_start";
    public const string SysctlPath = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

    // Kernels before 4.11 have no such sysctl: ports below 1024 were privileged, full stop.
    private const int KernelDefault = 1024;

    /// <summary>The first port any user may bind, in this process's network namespace.</summary>
    /// <exception cref="LinuxInteropException">The sysctl exists but cannot be read or parsed.</exception>
    public static int Start(string path = SysctlPath)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return KernelDefault;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LinuxInteropException($"cannot read {path}: {e.Message}", e);
        }

        return int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var start)
            ? start
            : throw new LinuxInteropException($"{path} holds \"{text.Trim()}\", not a port number");
    }

    /// <summary>True when no unprivileged user can bind <paramref name="port"/> given <paramref name="start"/>.</summary>
    public static bool IsPrivileged(int port, int start) => port < start;
}
