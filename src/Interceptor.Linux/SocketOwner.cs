namespace Interceptor.Linux;

/// <summary>The Unix user owning a TCP socket, and the socket's inode (as in /proc/PID/fd links).</summary>
public readonly record struct SocketOwner(uint Uid, ulong Inode);

/// <summary>How <see cref="SocketOwnerLookup"/> finds socket owners.</summary>
public enum OwnerLookupMethod
{
    /// <summary>An exact NETLINK_SOCK_DIAG query per lookup (microseconds).</summary>
    SockDiag,

    /// <summary>
    /// Scanning /proc/net/tcp and /proc/net/tcp6 (tens of milliseconds on a busy host); used only
    /// when this kernel or sandbox refuses netlink sockets.
    /// </summary>
    ProcNetTcp,
}
