using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// A TCP socket of this network namespace bound to the port asked for, as the kernel's sock_diag dump lists it.
/// <see cref="Uid"/> is trustworthy only with an <see cref="Inode"/>: a socket without one has no owner the kernel still
/// knows (a connection orphaned by <c>close()</c>, or waiting in a listener's queue to be accepted), and older kernels
/// (before 6.17) report uid 0 for it. A request socket (a listener's half-open connection) is listed as
/// <see cref="TcpState.SynReceived"/> with uid and inode 0; a TIME_WAIT minisocket (<see cref="IsTimeWait"/>) may be listed
/// as <see cref="TcpState.FinWait2"/>.
/// </summary>
public sealed record PortSocket(TcpState State, IPEndPoint Local, IPEndPoint Remote, uint Uid, ulong Inode)
{
    /// <summary>The socket's own family: an IPv6 socket carrying IPv4 lists IPv4-mapped addresses.</summary>
    public AddressFamily Family => Local.AddressFamily;

    /// <summary>A TIME_WAIT minisocket (idiag_timer 3), whatever state it is listed in: no socket, no owner, sends no data.</summary>
    public bool IsTimeWait => Timer == 3;

    /// <summary>The kernel's cookie for the socket, unique while it lives: with it, a request can only ever name this one socket.</summary>
    public ulong Cookie { get; internal init; }

    /// <summary>The interface the socket is bound to (0: none), part of its identity in an exact request.</summary>
    internal uint Interface { get; init; }

    /// <summary>idiag_timer: which timer runs (3 for a TIME_WAIT minisocket).</summary>
    internal byte Timer { get; init; }

    public override string ToString() => $"{State} {Local} -> {Remote} uid {Uid} inode {Inode}";
}

/// <summary>
/// The TCP sockets on one port (theirs, or their peer's), read with a NETLINK_SOCK_DIAG dump per address family, and the
/// kernel's SOCK_DESTROY for one of them (as <c>ss -K</c> does; it needs CAP_NET_ADMIN and a kernel built with
/// CONFIG_INET_DIAG_DESTROY).
/// </summary>
public static class PortSockets
{
    /// <summary>Every TCP state's bit but TIME_WAIT's: an entry with no socket and no owner, which sends no data.</summary>
    public const uint AllButTimeWait = 0xFFF & ~(1u << (int)TcpState.TimeWait);

    private const int NetlinkSockDiag = 4;
    private const ushort SockDestroy = 21;
    private const ushort NlmFAck = 0x4;
    private const ushort NlmFDump = 0x300;
    private const int RequestLength = SockDiagMessage.RequestLength;

    // A dump datagram holds many messages; the kernel fills at most 32 KiB per datagram.
    private const int ReceiveBufferSize = 64 * 1024;

    /// <summary>
    /// The TCP sockets (both families) whose local port is <paramref name="port"/> and whose state is in
    /// <paramref name="states"/> (a bit per <see cref="TcpState"/>; SYN_RECV's brings the listeners' request sockets).
    /// </summary>
    /// <exception cref="LinuxInteropException">The netlink socket could not be opened or the kernel's answer was unusable.</exception>
    public static IReadOnlyList<PortSocket> OnPort(int port, uint states) => Dump(port, states, Side.Local, _ => true, int.MaxValue, out _);

    /// <summary>
    /// Like <see cref="OnPort(int, uint)"/>, keeping only the sockets <paramref name="keep"/> chooses, at most
    /// <paramref name="limit"/> of them per address family: the rest of the dump is read and dropped, so a port with a great
    /// many sockets costs time, not memory. <paramref name="truncated"/> says whether some were dropped.
    /// </summary>
    public static IReadOnlyList<PortSocket> OnPort(int port, uint states, Func<PortSocket, bool> keep, int limit, out bool truncated) =>
        Dump(port, states, Side.Local, keep, limit, out truncated);

    /// <summary>The TCP sockets (both families) whose remote port is <paramref name="port"/>: the clients of that port, chosen and bounded as above.</summary>
    public static IReadOnlyList<PortSocket> ToPort(int port, uint states, Func<PortSocket, bool> keep, int limit, out bool truncated) =>
        Dump(port, states, Side.Remote, keep, limit, out truncated);

    /// <summary>
    /// Has the kernel abort each socket (its owner's next call fails with ECONNABORTED, the peer gets a reset; a request
    /// socket is dropped from its listener's queue). Each request names the socket by its ends and cookie, so a socket gone
    /// since the dump is never mistaken for another on the same ends. Returns the errno per socket, 0 when it was aborted:
    /// ENOENT or ESTALE when it is gone already, EOPNOTSUPP on a kernel without CONFIG_INET_DIAG_DESTROY, EPERM without
    /// CAP_NET_ADMIN.
    /// </summary>
    /// <exception cref="LinuxInteropException">The netlink socket could not be opened or answered nothing usable.</exception>
    public static IReadOnlyList<int> Destroy(IReadOnlyList<PortSocket> sockets)
    {
        ArgumentNullException.ThrowIfNull(sockets);
        var results = new int[sockets.Count];
        if (sockets.Count == 0)
        {
            return results;
        }

        using var channel = NetlinkChannel.Open(NetlinkSockDiag, "NETLINK_SOCK_DIAG", TimeSpan.FromSeconds(2));
        var buffer = new byte[4096];
        Span<byte> request = stackalloc byte[RequestLength];
        for (var i = 0; i < sockets.Count; i++)
        {
            var sequence = (uint)i + 1;
            EncodeDestroyRequest(request, sequence, sockets[i]);
            channel.Send(request);
            results[i] = ReadAck(channel, buffer, sequence);
        }

        return results;
    }

    private static List<PortSocket> Dump(int port, uint states, Side side, Func<PortSocket, bool> keep, int limit, out bool truncated)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        ArgumentNullException.ThrowIfNull(keep);
        using var channel = NetlinkChannel.Open(NetlinkSockDiag, "NETLINK_SOCK_DIAG", TimeSpan.FromSeconds(2));
        var buffer = new byte[ReceiveBufferSize];
        var found = new List<PortSocket>();
        truncated = false;
        uint sequence = 0;
        Span<byte> request = stackalloc byte[RequestLength];
        foreach (var family in new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            // Each family has its own budget: sockets of one cannot crowd the other's out of the answer.
            var filter = new DumpFilter(port, side, states, keep, limit);
            sequence++;
            EncodeDumpRequest(request, sequence, family, port, states, side);
            channel.Send(request);
            while (!DecodeDumpDatagram(buffer.AsSpan(0, channel.Receive(buffer)), sequence, filter, found))
            {
            }

            truncated |= filter.Truncated;
        }

        return found;
    }

    /// <summary>nlmsghdr + inet_diag_req_v2: a dump of the TCP sockets of <paramref name="family"/> in <paramref name="states"/> with local (or remote) port <paramref name="port"/>.</summary>
    internal static void EncodeDumpRequest(Span<byte> buffer, uint sequence, AddressFamily family, int port, uint states, Side side = Side.Local)
    {
        EncodeHeader(buffer, sequence, SockDiagMessage.SockDiagByFamily, SockDiagMessage.NlmFRequest | NlmFDump, FamilyByte(family), states);

        // The kernel skips sockets whose port differs from a non-zero idiag_sport (idiag_dport); the decoder checks it again.
        var offset = side == Side.Local ? SockDiagMessage.ReqSourcePort : SockDiagMessage.ReqDestinationPort;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[offset..], (ushort)port);
    }

    /// <summary>nlmsghdr + inet_diag_req_v2: SOCK_DESTROY for exactly <paramref name="socket"/>, its cookie included, acknowledged.</summary>
    internal static void EncodeDestroyRequest(Span<byte> buffer, uint sequence, PortSocket socket)
    {
        EncodeHeader(buffer, sequence, SockDestroy, SockDiagMessage.NlmFRequest | NlmFAck, FamilyByte(socket.Family), 1u << (int)socket.State);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[SockDiagMessage.ReqSourcePort..], (ushort)socket.Local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[SockDiagMessage.ReqDestinationPort..], (ushort)socket.Remote.Port);
        SockDiagMessage.WriteAddress(buffer.Slice(SockDiagMessage.ReqSource, 16), socket.Local.Address);
        SockDiagMessage.WriteAddress(buffer.Slice(SockDiagMessage.ReqDestination, 16), socket.Remote.Address);
        MemoryMarshal.Write(buffer[SockDiagMessage.ReqInterface..], socket.Interface);
        MemoryMarshal.Write(buffer[SockDiagMessage.ReqCookie..], socket.Cookie);
    }

    /// <summary>Adds the sockets of one dump datagram that <paramref name="filter"/> keeps to <paramref name="found"/>; true once NLMSG_DONE ends the dump.</summary>
    internal static bool DecodeDumpDatagram(ReadOnlySpan<byte> datagram, uint sequence, DumpFilter filter, List<PortSocket> found)
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
                    throw new LinuxInteropException("sock_diag dump of TCP sockets", errno);
                case SockDiagMessage.SockDiagByFamily when message.Length >= SockDiagMessage.MinimumResponseLength:
                    if (Decode(message) is { } socket && filter.Matches(socket))
                    {
                        if (filter.Kept < filter.Limit)
                        {
                            found.Add(socket);
                            filter.Kept++;
                        }
                        else
                        {
                            filter.Truncated = true;
                        }
                    }

                    break;
            }
        }

        return false;
    }

    private static void EncodeHeader(Span<byte> buffer, uint sequence, ushort type, ushort flags, byte family, uint states)
    {
        buffer[..RequestLength].Clear();
        MemoryMarshal.Write(buffer, (uint)RequestLength);
        MemoryMarshal.Write(buffer[4..], type);
        MemoryMarshal.Write(buffer[6..], flags);
        MemoryMarshal.Write(buffer[8..], sequence);
        buffer[SockDiagMessage.ReqFamily] = family;
        buffer[SockDiagMessage.ReqProtocol] = SockDiagMessage.IpProtoTcp;
        MemoryMarshal.Write(buffer[SockDiagMessage.ReqStates..], states);
    }

    private static byte FamilyByte(AddressFamily family) => family == AddressFamily.InterNetwork ? SockDiagMessage.AfInet : SockDiagMessage.AfInet6;

    // The acknowledgement of one SOCK_DESTROY: NLMSG_ERROR carrying 0 or a negative errno. A stale answer (another sequence) is skipped.
    private static int ReadAck(NetlinkChannel channel, byte[] buffer, uint sequence)
    {
        while (true)
        {
            var kind = NetlinkFrame.ReadFirst(buffer.AsSpan(0, channel.Receive(buffer)), sequence, out _, out _, out var errno);
            switch (kind)
            {
                case NetlinkFrameKind.OtherSequence:
                    continue;
                case NetlinkFrameKind.NotFound or NetlinkFrameKind.Error:
                    return errno;
                default:
                    throw new LinuxInteropException("sock_diag SOCK_DESTROY answered with something other than an acknowledgement");
            }
        }
    }

    // inet_diag_msg (SockDiagMessage's offsets): ports and addresses in network order, the rest in host order.
    private static PortSocket? Decode(ReadOnlySpan<byte> message)
    {
        var length = message[SockDiagMessage.RespFamily] switch
        {
            SockDiagMessage.AfInet => 4,
            SockDiagMessage.AfInet6 => 16,
            _ => 0,
        };
        var state = message[SockDiagMessage.RespState];
        if (length == 0 || state is 0 or > (byte)TcpState.NewSynReceived)
        {
            return null;
        }

        var local = new IPEndPoint(
            new IPAddress(message.Slice(SockDiagMessage.RespSource, length)), BinaryPrimitives.ReadUInt16BigEndian(message[SockDiagMessage.RespSourcePort..]));
        var remote = new IPEndPoint(
            new IPAddress(message.Slice(SockDiagMessage.RespDestination, length)), BinaryPrimitives.ReadUInt16BigEndian(message[SockDiagMessage.RespDestinationPort..]));
        return new PortSocket((TcpState)state, local, remote, MemoryMarshal.Read<uint>(message[SockDiagMessage.RespUid..]), MemoryMarshal.Read<uint>(message[SockDiagMessage.RespInode..]))
        {
            Interface = MemoryMarshal.Read<uint>(message[SockDiagMessage.RespInterface..]),
            Cookie = MemoryMarshal.Read<ulong>(message[SockDiagMessage.RespCookie..]),
            Timer = message[SockDiagMessage.RespTimer],
        };
    }
}

/// <summary>Which end of a socket a dump's port is: its own (a server's, a bound client's) or its peer's.</summary>
internal enum Side
{
    Local,
    Remote,
}

/// <summary>What one family's dump keeps: the port on the asked side, the states, the caller's choice, up to a limit.</summary>
internal sealed class DumpFilter(int port, Side side, uint states, Func<PortSocket, bool> keep, int limit)
{
    public int Limit => limit;

    /// <summary>The sockets kept so far.</summary>
    public int Kept { get; set; }

    /// <summary>Set when a socket to keep was dropped for the limit.</summary>
    public bool Truncated { get; set; }

    public bool Matches(PortSocket socket) =>
        (side == Side.Local ? socket.Local.Port : socket.Remote.Port) == port && (states & (1u << (int)socket.State)) != 0 && keep(socket);
}
