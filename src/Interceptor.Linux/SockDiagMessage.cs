using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Interceptor.Core.Net;

namespace Interceptor.Linux;

/// <summary>What a sock_diag reply datagram said about our request.</summary>
internal enum SockDiagStatus
{
    /// <summary>
    /// An inet_diag_msg for exactly the requested socket, connected (see <see cref="SockDiagMessage.IsConnected"/>);
    /// <see cref="SockDiagReply.Owner"/> and <see cref="SockDiagReply.Socket"/> are set.
    /// </summary>
    Found,

    /// <summary>
    /// An inet_diag_msg for some other socket: a miss on the exact 4-tuple is answered with a listener on the
    /// port (anyone's), a TIME_WAIT entry, or a socket with other addresses. <see cref="SockDiagReply.Socket"/>
    /// says what it was; its uid must not be trusted, so this counts as "not found".
    /// </summary>
    OtherSocket,

    /// <summary>The kernel answered ENOENT: no socket with that 4-tuple exists.</summary>
    NotFound,

    /// <summary>The kernel answered with another error; <see cref="SockDiagReply.Errno"/> is set.</summary>
    Error,

    /// <summary>A well-formed reply to some other request (a late answer after a timeout); read on.</summary>
    OtherSequence,
}

internal readonly record struct SockDiagReply(SockDiagStatus Status, SocketOwner Owner, int Errno, SockDiagSocketInfo? Socket = null);

/// <summary>What an inet_diag_msg says about the socket the kernel found: its own family, state, ends and owner.</summary>
internal readonly record struct SockDiagSocketInfo(AddressFamily Family, TcpState State, IPEndPoint Local, IPEndPoint Remote, uint Uid, ulong Inode)
{
    public override string ToString() => $"{Family} {State} {Local} -> {Remote} uid {Uid} inode {Inode}";
}

/// <summary>
/// Byte layout of one NETLINK_SOCK_DIAG exact-match request and its reply. Kept apart from the
/// socket code so the encoding can be checked byte by byte without a kernel.
/// </summary>
/// <remarks>
/// Netlink headers and inet_diag scalars are in host byte order; ports and addresses in the
/// socket id are in network byte order, as the kernel stores them in the socket.
/// </remarks>
internal static class SockDiagMessage
{
    public const int NetlinkHeaderLength = NetlinkFrame.HeaderLength;

    /// <summary>nlmsghdr (16) + inet_diag_req_v2 (56).</summary>
    public const int RequestLength = 72;

    /// <summary>nlmsghdr (16) + inet_diag_msg (72); attributes may follow.</summary>
    public const int MinimumResponseLength = 88;

    public const ushort SockDiagByFamily = 20;
    public const ushort NlmFRequest = 1;

    internal const byte IpProtoTcp = 6;
    internal const byte AfInet = 2;
    internal const byte AfInet6 = 10;

    // Offsets inside the netlink message, i.e. counted from the nlmsghdr (PortSockets reads and writes the same layout).
    internal const int ReqFamily = 16;
    internal const int ReqProtocol = 17;
    internal const int ReqStates = 20;
    internal const int ReqSourcePort = 24;
    internal const int ReqDestinationPort = 26;
    internal const int ReqSource = 28;
    internal const int ReqDestination = 44;
    internal const int ReqInterface = 60;
    internal const int ReqCookie = 64;
    internal const int RespFamily = 16;
    internal const int RespState = 17;
    internal const int RespTimer = 18;
    internal const int RespSourcePort = 20;
    internal const int RespDestinationPort = 22;
    internal const int RespSource = 24;
    internal const int RespDestination = 40;
    internal const int RespInterface = 56;
    internal const int RespCookie = 60;
    internal const int RespUid = 80;
    internal const int RespInode = 84;

    /// <summary>
    /// The states of a client socket whose owner may be trusted: ESTABLISHED, and FIN_WAIT1/FIN_WAIT2 of a
    /// client that half-closed (shutdown(SHUT_WR) after writing a pipelined dialogue) but still holds the
    /// socket. Each of these lives in the kernel's established hash, where one 4-tuple names one socket, so
    /// an exact match is the client's own socket. A client that close()d is orphaned (inode 0) and refused
    /// anyway. Never LISTEN (the kernel answers a miss with a listener on the port, anyone's), SYN_RECV
    /// (a half-open request of a listener), TIME_WAIT (no owner: uid 0), CLOSE_WAIT, LAST_ACK or CLOSING
    /// (the far end, i.e. our accepted side, already sent FIN: impossible for a connection being
    /// accepted, so a leftover of another connection).
    /// </summary>
    public const uint ConnectedStates = (1u << (int)TcpState.Established) | (1u << (int)TcpState.FinWait1) | (1u << (int)TcpState.FinWait2);

    /// <summary>
    /// Writes the request that asks for the one TCP socket whose local end is
    /// <paramref name="source"/> and remote end <paramref name="destination"/>, in a connected state.
    /// </summary>
    /// <remarks>
    /// For a redirected connection, ask for the client's own socket: its local end is the
    /// client endpoint the listener sees, and its remote end is still the original destination
    /// (NAT rewrites packets, not the socket). Our listener's address would find nothing.
    /// The kernel ignores the state mask for an exact lookup (checked on 6.18: a miss is answered with a
    /// LISTEN socket even when LISTEN is not asked for), so <see cref="TryDecodeResponse"/> checks the reply.
    /// </remarks>
    public static void EncodeRequest(Span<byte> buffer, uint sequence, IPEndPoint source, IPEndPoint destination)
    {
        if (buffer.Length < RequestLength)
        {
            throw new ArgumentException($"need {RequestLength} bytes", nameof(buffer));
        }

        var family = source.AddressFamily;
        if (family != destination.AddressFamily)
        {
            throw new ArgumentException("source and destination must be of one address family", nameof(destination));
        }

        if (family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"unsupported address family {family}", nameof(source));
        }

        var message = buffer[..RequestLength];
        message.Clear();

        // nlmsghdr. NLM_F_REQUEST without NLM_F_DUMP: the kernel does an exact lookup and
        // answers with one message; no NLM_F_ACK, so success is not followed by an ack.
        WriteHost32(message[0..], RequestLength);
        WriteHost16(message[4..], SockDiagByFamily);
        WriteHost16(message[6..], NlmFRequest);
        WriteHost32(message[8..], sequence);
        WriteHost32(message[12..], 0); // port id 0: addressed to the kernel

        // inet_diag_req_v2
        message[ReqFamily] = family == AddressFamily.InterNetwork ? AfInet : AfInet6;
        message[ReqProtocol] = IpProtoTcp;
        WriteHost32(message[ReqStates..], ConnectedStates);
        BinaryPrimitives.WriteUInt16BigEndian(message[ReqSourcePort..], (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(message[ReqDestinationPort..], (ushort)destination.Port);
        WriteAddress(message.Slice(ReqSource, 16), source.Address);
        WriteAddress(message.Slice(ReqDestination, 16), destination.Address);
        WriteHost32(message[ReqInterface..], 0);

        // INET_DIAG_NOCOOKIE in both words: we do not know the socket's cookie, so the kernel
        // must not compare it.
        WriteHost32(message[ReqCookie..], uint.MaxValue);
        WriteHost32(message[(ReqCookie + 4)..], uint.MaxValue);
    }

    /// <summary>
    /// Reads the first netlink message of a received datagram, the answer to the request for the socket
    /// <paramref name="source"/> → <paramref name="destination"/>. Returns false when the datagram is
    /// truncated or not a message this request can produce. An inet_diag_msg is <see cref="SockDiagStatus.Found"/>
    /// only when it describes exactly that socket (<see cref="IsTheSocketAskedFor"/>); any other socket is
    /// <see cref="SockDiagStatus.OtherSocket"/>, whose uid must not be used.
    /// </summary>
    public static bool TryDecodeResponse(
        ReadOnlySpan<byte> datagram, uint expectedSequence, IPEndPoint source, IPEndPoint destination, out SockDiagReply reply)
    {
        reply = default;
        switch (NetlinkFrame.ReadFirst(datagram, expectedSequence, out var type, out var message, out var errno))
        {
            case NetlinkFrameKind.OtherSequence:
                reply = new SockDiagReply(SockDiagStatus.OtherSequence, default, 0);
                return true;
            case NetlinkFrameKind.NotFound:
                reply = new SockDiagReply(SockDiagStatus.NotFound, default, 0);
                return true;
            case NetlinkFrameKind.Error:
                reply = new SockDiagReply(SockDiagStatus.Error, default, errno);
                return true;
            case NetlinkFrameKind.Payload when type == SockDiagByFamily && message.Length >= MinimumResponseLength:
                var socket = DecodeSocket(message);
                var status = IsTheSocketAskedFor(socket, source, destination) ? SockDiagStatus.Found : SockDiagStatus.OtherSocket;
                reply = new SockDiagReply(status, new SocketOwner(socket.Uid, socket.Inode), 0, socket);
                return true;
            default:
                return false;
        }
    }

    /// <summary>True for the states in <see cref="ConnectedStates"/>.</summary>
    public static bool IsConnected(TcpState state) => state is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2;

    /// <summary>
    /// Whether the kernel's answer is the socket asked for: connected, of the asked family, with exactly the
    /// asked local and remote addresses and ports. A dual-stack (AF_INET6) socket carrying IPv4 answers an
    /// AF_INET request with IPv4-mapped addresses; those compare in their IPv4 form.
    /// </summary>
    public static bool IsTheSocketAskedFor(SockDiagSocketInfo socket, IPEndPoint source, IPEndPoint destination)
    {
        var asked = source.AddressFamily;
        var familyFits = socket.Family == asked
            || (asked == AddressFamily.InterNetwork && socket.Family == AddressFamily.InterNetworkV6);
        return familyFits
            && IsConnected(socket.State)
            && MappedAddress.Unmap(socket.Local).Equals(MappedAddress.Unmap(source))
            && MappedAddress.Unmap(socket.Remote).Equals(MappedAddress.Unmap(destination));
    }

    /// <summary>Reads struct inet_diag_msg (the caller checked its length). Ports and addresses are in network order.</summary>
    private static SockDiagSocketInfo DecodeSocket(ReadOnlySpan<byte> message)
    {
        var family = message[RespFamily] switch
        {
            AfInet => AddressFamily.InterNetwork,
            AfInet6 => AddressFamily.InterNetworkV6,
            _ => AddressFamily.Unknown,
        };
        var addressLength = family == AddressFamily.InterNetworkV6 ? 16 : 4;
        var local = new IPEndPoint(
            new IPAddress(message.Slice(RespSource, addressLength)), BinaryPrimitives.ReadUInt16BigEndian(message[RespSourcePort..]));
        var remote = new IPEndPoint(
            new IPAddress(message.Slice(RespDestination, addressLength)), BinaryPrimitives.ReadUInt16BigEndian(message[RespDestinationPort..]));
        return new SockDiagSocketInfo(family, (TcpState)message[RespState], local, remote, ReadHost32(message[RespUid..]), ReadHost32(message[RespInode..]));
    }

    internal static void WriteAddress(Span<byte> destination, IPAddress address)
    {
        // IPv4 sits in the first four bytes of the 16-byte field; the rest stays zero.
        if (!address.TryWriteBytes(destination, out _))
        {
            throw new ArgumentException("address does not fit", nameof(address));
        }
    }

    // The kernel and we share one CPU, so "host order" is this machine's native order.
    private static void WriteHost32(Span<byte> destination, uint value) => MemoryMarshal.Write(destination, in value);

    private static void WriteHost16(Span<byte> destination, ushort value) => MemoryMarshal.Write(destination, in value);

    private static uint ReadHost32(ReadOnlySpan<byte> source) => MemoryMarshal.Read<uint>(source);
}
