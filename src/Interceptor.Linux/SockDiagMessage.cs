using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>What a sock_diag reply datagram said about our request.</summary>
internal enum SockDiagStatus
{
    /// <summary>An inet_diag_msg for the requested socket; <see cref="SockDiagReply.Owner"/> is set.</summary>
    Found,

    /// <summary>The kernel answered ENOENT: no socket with that 4-tuple exists.</summary>
    NotFound,

    /// <summary>The kernel answered with another error; <see cref="SockDiagReply.Errno"/> is set.</summary>
    Error,

    /// <summary>A well-formed reply to some other request (a late answer after a timeout); read on.</summary>
    OtherSequence,
}

internal readonly record struct SockDiagReply(SockDiagStatus Status, SocketOwner Owner, int Errno);

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

    private const byte IpProtoTcp = 6;
    private const byte AfInet = 2;
    private const byte AfInet6 = 10;

    // Offsets inside the netlink message, i.e. counted from the nlmsghdr.
    private const int ReqFamily = 16;
    private const int ReqProtocol = 17;
    private const int ReqStates = 20;
    private const int ReqSourcePort = 24;
    private const int ReqDestinationPort = 26;
    private const int ReqSource = 28;
    private const int ReqDestination = 44;
    private const int ReqInterface = 60;
    private const int ReqCookie = 64;
    private const int RespUid = 80;
    private const int RespInode = 84;

    /// <summary>
    /// Writes the request that asks for the one TCP socket whose local end is
    /// <paramref name="source"/> and remote end <paramref name="destination"/>, in any state.
    /// </summary>
    /// <remarks>
    /// For a redirected connection, ask for the client's own socket: its local end is the
    /// client endpoint the listener sees, and its remote end is still the original destination
    /// (NAT rewrites packets, not the socket). Our listener's address would find nothing.
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
        WriteHost32(message[ReqStates..], uint.MaxValue); // every TCP state
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
    /// Reads the first netlink message of a received datagram. Returns false when the datagram
    /// is truncated or not a message this request can produce.
    /// </summary>
    public static bool TryDecodeResponse(ReadOnlySpan<byte> datagram, uint expectedSequence, out SockDiagReply reply)
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
                reply = new SockDiagReply(SockDiagStatus.Found, new SocketOwner(ReadHost32(message[RespUid..]), ReadHost32(message[RespInode..])), 0);
                return true;
            default:
                return false;
        }
    }

    private static void WriteAddress(Span<byte> destination, IPAddress address)
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
