using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Net;

namespace Interceptor.Linux;

/// <summary>A TCP socket in LISTEN state in this network namespace: where it listens, its owner's uid and its inode.</summary>
public sealed record ListeningSocket(IPEndPoint Local, uint Uid, ulong Inode)
{
    /// <summary>
    /// True when a connection redirected to 127.0.0.1 or [::1] on this socket's port could land on it: bound to a
    /// loopback address, to a wildcard (0.0.0.0, ::) or to the IPv4-mapped form of either.
    /// </summary>
    public bool CanReceiveRedirected
    {
        get
        {
            var address = MappedAddress.Unmap(Local.Address);
            return IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
        }
    }

    public override string ToString() => $"{MappedAddress.Unmap(Local)} uid={Uid} inode={Inode}";
}

/// <summary>
/// Who listens on a TCP port (issue 12.1: nobody but the daemon may hold the port the redirect points at).
/// One NETLINK_SOCK_DIAG dump per address family for sockets in LISTEN state, filtered on the port. This is a dump of
/// listeners on purpose; it is not the exact-tuple owner lookup of accepted connections, which must never ask for LISTEN.
/// </summary>
public static class ListeningSockets
{
    /// <summary>Every TCP socket listening on <paramref name="port"/> (any address, IPv4 and IPv6) in this network namespace.</summary>
    /// <exception cref="LinuxInteropException">The netlink socket could not be opened or the kernel's answer was unusable.</exception>
    public static IReadOnlyList<ListeningSocket> OnPort(int port) =>
        [.. PortSockets.OnPort(port, 1u << (int)TcpState.Listen).Select(s => new ListeningSocket(s.Local, s.Uid, s.Inode))];

    /// <summary>
    /// The listeners on <paramref name="port"/> that could receive redirected connections and are not ours: another uid,
    /// or our uid but a socket (inode) that is not one of <paramref name="ourInodes"/>.
    /// </summary>
    public static IReadOnlyList<ListeningSocket> FindForeign(int port, uint ourUid, IReadOnlySet<ulong> ourInodes)
    {
        ArgumentNullException.ThrowIfNull(ourInodes);
        return [.. OnPort(port).Where(s => s.CanReceiveRedirected && (s.Uid != ourUid || !ourInodes.Contains(s.Inode)))];
    }

    /// <summary>The inode of a socket (what sock_diag and /proc/net/tcp report), from the /proc/self/fd link "socket:[N]".</summary>
    public static ulong InodeOf(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var fd = socket.SafeHandle.DangerousGetHandle();
        var target = new FileInfo($"/proc/self/fd/{fd}").LinkTarget;
        return target is not null && target.StartsWith("socket:[", StringComparison.Ordinal) && target.EndsWith(']')
            && ulong.TryParse(target.AsSpan(8, target.Length - 9), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var inode)
            ? inode
            : throw new LinuxInteropException($"/proc/self/fd/{fd} is not a socket ({target ?? "no link"})");
    }
}
