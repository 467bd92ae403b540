using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
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
    private const int NetlinkSockDiag = 4;
    private const ushort SockDiagByFamily = 20;
    private const ushort NlmFRequest = 0x1;
    private const ushort NlmFDump = 0x300;
    private const int TcpListen = 10;
    private const byte IpProtoTcp = 6;
    private const int RequestLength = 72;
    private const int MessageLength = 88;

    // A dump datagram holds many messages; the kernel fills at most 32 KiB per datagram.
    private const int ReceiveBufferSize = 64 * 1024;

    /// <summary>Every TCP socket listening on <paramref name="port"/> (any address, IPv4 and IPv6) in this network namespace.</summary>
    /// <exception cref="LinuxInteropException">The netlink socket could not be opened or the kernel's answer was unusable.</exception>
    public static IReadOnlyList<ListeningSocket> OnPort(int port)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        using var channel = NetlinkChannel.Open(NetlinkSockDiag, "NETLINK_SOCK_DIAG", TimeSpan.FromSeconds(2));
        var buffer = new byte[ReceiveBufferSize];
        var found = new List<ListeningSocket>();
        uint sequence = 0;
        Span<byte> request = stackalloc byte[RequestLength];
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            sequence++;
            EncodeDumpRequest(request, sequence, family, port);
            channel.Send(request);
            while (!DecodeDumpDatagram(buffer.AsSpan(0, channel.Receive(buffer)), sequence, port, found))
            {
            }
        }

        return found;
    }

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

    /// <summary>nlmsghdr + inet_diag_req_v2: TCP sockets of <paramref name="family"/> in LISTEN state with source port <paramref name="port"/>.</summary>
    internal static void EncodeDumpRequest(Span<byte> buffer, uint sequence, AddressFamily family, int port)
    {
        buffer[..RequestLength].Clear();
        MemoryMarshal.Write(buffer, (uint)RequestLength);
        MemoryMarshal.Write(buffer[4..], SockDiagByFamily);
        MemoryMarshal.Write(buffer[6..], (ushort)(NlmFRequest | NlmFDump));
        MemoryMarshal.Write(buffer[8..], sequence);
        buffer[16] = family == AddressFamily.InterNetwork ? (byte)2 : (byte)10;
        buffer[17] = IpProtoTcp;
        MemoryMarshal.Write(buffer[20..], 1u << TcpListen);

        // The kernel skips listeners whose port differs from a non-zero idiag_sport; the decoder checks it again.
        BinaryPrimitives.WriteUInt16BigEndian(buffer[24..], (ushort)port);
    }

    /// <summary>Adds the listeners of one dump datagram to <paramref name="found"/>; true once NLMSG_DONE ends the dump.</summary>
    internal static bool DecodeDumpDatagram(ReadOnlySpan<byte> datagram, uint sequence, int port, List<ListeningSocket> found)
    {
        var offset = 0;
        while (datagram.Length - offset >= NetlinkFrame.HeaderLength)
        {
            var message = datagram[offset..];
            var length = MemoryMarshal.Read<uint>(message);
            var type = MemoryMarshal.Read<ushort>(message[4..]);
            if (length < NetlinkFrame.HeaderLength || length > (uint)message.Length)
            {
                throw new LinuxInteropException($"malformed sock_diag dump message ({length} bytes of {message.Length})");
            }

            message = message[..(int)length];
            offset += (int)((length + 3) & ~3u);
            if (MemoryMarshal.Read<uint>(message[8..]) != sequence)
            {
                continue;
            }

            switch (type)
            {
                case NetlinkFrame.Done:
                    return true;
                case NetlinkFrame.Error:
                    var errno = message.Length >= 20 ? -MemoryMarshal.Read<int>(message[16..]) : 0;
                    throw new LinuxInteropException("sock_diag dump of listening sockets", errno);
                case SockDiagByFamily when message.Length >= MessageLength:
                    var listener = Decode(message);
                    if (listener is not null && listener.Local.Port == port)
                    {
                        found.Add(listener);
                    }

                    break;
            }
        }

        return false;
    }

    // inet_diag_msg after the 16-byte header: family, state, timer, retrans, then the socket id (ports and addresses in
    // network order), expires, rqueue, wqueue, uid (offset 80), inode (84).
    private static ListeningSocket? Decode(ReadOnlySpan<byte> message)
    {
        if (message[17] != TcpListen)
        {
            return null;
        }

        var port = BinaryPrimitives.ReadUInt16BigEndian(message[20..]);
        var address = message[16] switch
        {
            2 => new IPAddress(message.Slice(24, 4)),
            10 => new IPAddress(message.Slice(24, 16)),
            _ => null,
        };
        return address is null
            ? null
            : new ListeningSocket(new IPEndPoint(address, port), MemoryMarshal.Read<uint>(message[80..]), MemoryMarshal.Read<uint>(message[84..]));
    }
}
