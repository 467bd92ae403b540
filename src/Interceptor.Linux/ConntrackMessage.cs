using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>What a ctnetlink reply datagram said about our request.</summary>
internal enum ConntrackStatus
{
    /// <summary>The kernel's entry for the requested tuple; <see cref="ConntrackReply.Entry"/> is set.</summary>
    Found,

    /// <summary>The kernel answered ENOENT: no tracked connection has that tuple.</summary>
    NotFound,

    /// <summary>The kernel answered with another error; <see cref="ConntrackReply.Errno"/> is set.</summary>
    Error,

    /// <summary>A well-formed reply to some other request (a late answer after a timeout); read on.</summary>
    OtherSequence,
}

internal readonly record struct ConntrackReply(ConntrackStatus Status, ConntrackEntry? Entry, int Errno);

/// <summary>
/// Byte layout of one ctnetlink IPCTNL_MSG_CT_GET request by reply tuple, and of its answer. Kept
/// apart from the socket code so the encoding can be checked byte by byte without a kernel.
/// </summary>
/// <remarks>
/// Constants from linux/netlink.h, linux/netfilter/nfnetlink.h and nfnetlink_conntrack.h.
/// Netlink headers and attribute headers are in host byte order; conntrack addresses and ports are
/// in network byte order (nfgenmsg.res_id too, but we always send 0).
/// </remarks>
internal static class ConntrackMessage
{
    public const int NetlinkHeaderLength = NetlinkFrame.HeaderLength;

    /// <summary>nlmsghdr (16) + nfgenmsg (4) + CTA_TUPLE_REPLY (4 + IP nest + 28-byte proto nest).</summary>
    public const int Ipv4RequestLength = 72;

    public const int Ipv6RequestLength = 96;

    public const int MaximumRequestLength = Ipv6RequestLength;

    // (NFNL_SUBSYS_CTNETLINK = 1) << 8 | IPCTNL_MSG_CT_GET (1) for the request. The kernel (6.x)
    // answers with IPCTNL_MSG_CT_NEW (0), as in its events; GET is accepted too, in case one echoes it.
    public const ushort CtGet = (1 << 8) | 1;
    public const ushort CtNew = 1 << 8;

    public const ushort NlmFRequest = 1;

    private const ushort CtaTupleOrig = 1;
    private const ushort CtaTupleReply = 2;
    private const ushort CtaTupleIp = 1;
    private const ushort CtaTupleProto = 2;
    private const ushort CtaIpV4Src = 1;
    private const ushort CtaIpV4Dst = 2;
    private const ushort CtaIpV6Src = 3;
    private const ushort CtaIpV6Dst = 4;
    private const ushort CtaProtoNum = 1;
    private const ushort CtaProtoSrcPort = 2;
    private const ushort CtaProtoDstPort = 3;

    private const byte IpProtoTcp = 6;
    private const byte AfInet = 2;
    private const byte AfInet6 = 10;
    private const byte NfnetlinkV0 = 0;
    private const int NfgenmsgLength = 4;

    public static int RequestLength(AddressFamily family) =>
        family == AddressFamily.InterNetworkV6 ? Ipv6RequestLength : Ipv4RequestLength;

    /// <summary>
    /// Writes the request for the one TCP conntrack entry whose reply direction goes from
    /// <paramref name="replySource"/> to <paramref name="replyDestination"/>, and returns its length.
    /// </summary>
    /// <remarks>
    /// For a REDIRECTed connection the reply tuple is what the accepted socket shows: our listener
    /// (source) to the client endpoint after NAT (destination). Conntrack keeps reply tuples
    /// unique, so an exact GET names at most one connection; its original tuple is what the
    /// client's own socket says.
    /// </remarks>
    public static int EncodeGetByReply(Span<byte> buffer, uint sequence, IPEndPoint replySource, IPEndPoint replyDestination)
    {
        var family = replySource.AddressFamily;
        if (family != replyDestination.AddressFamily)
        {
            throw new ArgumentException("source and destination must be of one address family", nameof(replyDestination));
        }

        if (family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"unsupported address family {family}", nameof(replySource));
        }

        var length = RequestLength(family);
        if (buffer.Length < length)
        {
            throw new ArgumentException($"need {length} bytes", nameof(buffer));
        }

        var message = buffer[..length];
        message.Clear();
        var ipv6 = family == AddressFamily.InterNetworkV6;
        var addressLength = ipv6 ? 16 : 4;

        // nlmsghdr. NLM_F_REQUEST without NLM_F_DUMP: an exact lookup answered by one message;
        // no NLM_F_ACK, so success is not followed by an ack.
        WriteHost32(message[0..], (uint)length);
        WriteHost16(message[4..], CtGet);
        WriteHost16(message[6..], NlmFRequest);
        WriteHost32(message[8..], sequence);
        WriteHost32(message[12..], 0); // port id 0: addressed to the kernel

        // nfgenmsg: the family selects how the kernel reads the tuple's addresses; res_id 0.
        message[16] = ipv6 ? AfInet6 : AfInet;
        message[17] = NfnetlinkV0;

        var ipNest = 4 + (2 * (4 + addressLength));
        const int protoNest = 4 + 8 + 8 + 8; // u8 and two be16 payloads, each padded to 4
        var offset = NetlinkAttribute.WriteNestHeader(message, 20, CtaTupleReply, 4 + ipNest + protoNest);

        offset = NetlinkAttribute.WriteNestHeader(message, offset, CtaTupleIp, ipNest);
        offset = WriteAttribute(message, offset, ipv6 ? CtaIpV6Src : CtaIpV4Src, replySource.Address);
        offset = WriteAttribute(message, offset, ipv6 ? CtaIpV6Dst : CtaIpV4Dst, replyDestination.Address);

        offset = NetlinkAttribute.WriteNestHeader(message, offset, CtaTupleProto, protoNest);
        WriteHost16(message[offset..], 5);
        WriteHost16(message[(offset + 2)..], CtaProtoNum);
        message[offset + 4] = IpProtoTcp;
        offset += 8;
        offset = WritePort(message, offset, CtaProtoSrcPort, replySource.Port);
        offset = WritePort(message, offset, CtaProtoDstPort, replyDestination.Port);

        return offset == length ? length : throw new InvalidOperationException($"encoded {offset} of {length} bytes");
    }

    /// <summary>
    /// Reads the first netlink message of a received datagram. Returns false when the datagram is
    /// truncated, malformed, or lacks a complete TCP tuple in either direction: the caller must
    /// not attribute anything from such an answer.
    /// </summary>
    public static bool TryDecodeResponse(ReadOnlySpan<byte> datagram, uint expectedSequence, out ConntrackReply reply)
    {
        reply = default;
        switch (NetlinkFrame.ReadFirst(datagram, expectedSequence, out var type, out var message, out var errno))
        {
            case NetlinkFrameKind.OtherSequence:
                reply = new ConntrackReply(ConntrackStatus.OtherSequence, null, 0);
                return true;
            case NetlinkFrameKind.NotFound:
                reply = new ConntrackReply(ConntrackStatus.NotFound, null, 0);
                return true;
            case NetlinkFrameKind.Error:
                reply = new ConntrackReply(ConntrackStatus.Error, null, errno);
                return true;
            case NetlinkFrameKind.Payload when type is CtGet or CtNew && TryDecodeEntry(message, out var entry):
                reply = new ConntrackReply(ConntrackStatus.Found, entry, 0);
                return true;
            default:
                return false;
        }
    }

    private static bool TryDecodeEntry(ReadOnlySpan<byte> message, out ConntrackEntry? entry)
    {
        entry = null;
        if (message.Length < NetlinkHeaderLength + NfgenmsgLength)
        {
            return false;
        }

        var family = message[NetlinkHeaderLength] switch
        {
            AfInet => AddressFamily.InterNetwork,
            AfInet6 => AddressFamily.InterNetworkV6,
            _ => AddressFamily.Unknown,
        };
        if (family == AddressFamily.Unknown)
        {
            return false;
        }

        ConntrackTuple? original = null;
        ConntrackTuple? replyTuple = null;
        var attributes = message[(NetlinkHeaderLength + NfgenmsgLength)..];
        var offset = 0;
        while (NetlinkAttribute.TryNext(attributes, ref offset, out var type, out var payload))
        {
            if (type is CtaTupleOrig or CtaTupleReply)
            {
                // A second tuple of one direction would make the answer ambiguous.
                var seen = type == CtaTupleOrig ? original : replyTuple;
                if (seen is not null || !TryDecodeTuple(payload, family, out var tuple))
                {
                    return false;
                }

                if (type == CtaTupleOrig)
                {
                    original = tuple;
                }
                else
                {
                    replyTuple = tuple;
                }
            }
        }

        if (offset < 0 || original is null || replyTuple is null)
        {
            return false;
        }

        entry = new ConntrackEntry(original.Value, replyTuple.Value);
        return true;
    }

    private static bool TryDecodeTuple(ReadOnlySpan<byte> nest, AddressFamily family, out ConntrackTuple tuple)
    {
        tuple = default;
        IPAddress? source = null;
        IPAddress? destination = null;
        int? sourcePort = null;
        int? destinationPort = null;
        byte? protocol = null;
        var ipv6 = family == AddressFamily.InterNetworkV6;
        var addressLength = ipv6 ? 16 : 4;

        var offset = 0;
        while (NetlinkAttribute.TryNext(nest, ref offset, out var type, out var payload))
        {
            switch (type)
            {
                case CtaTupleIp:
                    var inner = 0;
                    while (NetlinkAttribute.TryNext(payload, ref inner, out var ipType, out var address))
                    {
                        var isSource = ipType == (ipv6 ? CtaIpV6Src : CtaIpV4Src);
                        var isDestination = ipType == (ipv6 ? CtaIpV6Dst : CtaIpV4Dst);
                        if ((isSource || isDestination) && address.Length != addressLength)
                        {
                            return false;
                        }

                        if (isSource)
                        {
                            source = new IPAddress(address);
                        }
                        else if (isDestination)
                        {
                            destination = new IPAddress(address);
                        }
                    }

                    if (inner < 0)
                    {
                        return false;
                    }

                    break;

                case CtaTupleProto:
                    var proto = 0;
                    while (NetlinkAttribute.TryNext(payload, ref proto, out var protoType, out var value))
                    {
                        var expected = protoType switch
                        {
                            CtaProtoNum => 1,
                            CtaProtoSrcPort or CtaProtoDstPort => 2,
                            _ => -1,
                        };
                        if (expected >= 0 && value.Length != expected)
                        {
                            return false;
                        }

                        switch (protoType)
                        {
                            case CtaProtoNum:
                                protocol = value[0];
                                break;
                            case CtaProtoSrcPort:
                                sourcePort = BinaryPrimitives.ReadUInt16BigEndian(value);
                                break;
                            case CtaProtoDstPort:
                                destinationPort = BinaryPrimitives.ReadUInt16BigEndian(value);
                                break;
                        }
                    }

                    if (proto < 0)
                    {
                        return false;
                    }

                    break;
            }
        }

        if (offset < 0 || protocol != IpProtoTcp || source is null || destination is null || sourcePort is null || destinationPort is null)
        {
            return false;
        }

        tuple = new ConntrackTuple(new IPEndPoint(source, sourcePort.Value), new IPEndPoint(destination, destinationPort.Value));
        return true;
    }

    private static int WriteAttribute(Span<byte> message, int offset, ushort type, IPAddress address)
    {
        var payload = message[(offset + 4)..];
        if (!address.TryWriteBytes(payload, out var written))
        {
            throw new ArgumentException("address does not fit", nameof(address));
        }

        WriteHost16(message[offset..], (ushort)(4 + written));
        WriteHost16(message[(offset + 2)..], type);
        return offset + NetlinkAttribute.Align4(4 + written);
    }

    private static int WritePort(Span<byte> message, int offset, ushort type, int port)
    {
        WriteHost16(message[offset..], 6);
        WriteHost16(message[(offset + 2)..], type);
        BinaryPrimitives.WriteUInt16BigEndian(message[(offset + 4)..], (ushort)port);
        return offset + 8;
    }

    // The kernel and we share one CPU, so "host order" is this machine's native order.
    private static void WriteHost32(Span<byte> destination, uint value) => MemoryMarshal.Write(destination, in value);

    private static void WriteHost16(Span<byte> destination, ushort value) => MemoryMarshal.Write(destination, in value);

    private static uint ReadHost32(ReadOnlySpan<byte> source) => MemoryMarshal.Read<uint>(source);
}
