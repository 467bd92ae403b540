using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;

namespace Interceptor.Linux;

/// <summary>
/// A packet an nft <c>log group N</c> statement handed to userspace (nfnetlink_log): the rule's prefix, the uid that owns
/// the socket that sent it (absent for a packet without an owning socket), and its addresses and TCP ports.
/// </summary>
public sealed record LoggedPacket(string Prefix, uint? Uid, IPEndPoint? Source, IPEndPoint? Destination);

/// <summary>
/// The nfnetlink_log messages (linux/netfilter/nfnetlink_log.h): the configuration requests that bind a group to this
/// socket and set how much of each packet is copied, and the packet messages the kernel sends back.
/// </summary>
internal static class NflogMessage
{
    /// <summary>The longest configuration request we write.</summary>
    public const int ConfigRequestLength = NetlinkFrame.HeaderLength + NfgenmsgLength + 12;

    private const int NfgenmsgLength = 4;
    private const byte SubsystemUlog = 4; // NFNL_SUBSYS_ULOG
    private const byte MessagePacket = 0; // NFULNL_MSG_PACKET
    private const byte MessageConfig = 1; // NFULNL_MSG_CONFIG
    private const ushort NlmFRequest = 1;
    private const ushort NlmFAck = 4;

    private const ushort ConfigCommand = 1; // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd { u8 command; }
    private const ushort ConfigMode = 2; // NFULA_CFG_MODE: struct nfulnl_msg_config_mode { be32 copy_range; u8 copy_mode; u8 _pad; }
    private const byte CommandBind = 1; // NFULNL_CFG_CMD_BIND
    private const byte CopyPacket = 2; // NFULNL_COPY_PACKET

    private const ushort AttributePayload = 9; // NFULA_PAYLOAD: the packet from its network header on
    private const ushort AttributePrefix = 10; // NFULA_PREFIX: NUL-terminated
    private const ushort AttributeUid = 11; // NFULA_UID: be32, the fsuid of the opener of the packet's full socket
    private const byte FamilyIpv4 = 2; // NFPROTO_IPV4
    private const byte FamilyIpv6 = 10; // NFPROTO_IPV6
    private const byte ProtocolTcp = 6;
    private const byte HopByHop = 0;
    private const byte Routing = 43;
    private const byte Fragment = 44;
    private const byte DestinationOptions = 60;

    /// <summary>Writes NFULNL_CFG_CMD_BIND for <paramref name="group"/>: its packets come to this socket from now on.</summary>
    public static int EncodeBind(Span<byte> buffer, ushort group, uint sequence)
    {
        var start = Header(buffer, group, sequence, ConfigCommand, 1, out var total);
        buffer[start] = CommandBind;
        return total;
    }

    /// <summary>Writes the copy mode: the first <paramref name="range"/> bytes of each packet, enough for its headers.</summary>
    public static int EncodeCopyHeaders(Span<byte> buffer, ushort group, uint sequence, int range)
    {
        var start = Header(buffer, group, sequence, ConfigMode, 6, out var total);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[start..], (uint)range);
        buffer[start + 4] = CopyPacket;
        return total;
    }

    /// <summary>The kernel's answer to the request numbered <paramref name="sequence"/>: 0 for its ack, else the errno.</summary>
    public static NetlinkFrameKind TryDecodeAck(ReadOnlySpan<byte> datagram, uint sequence, out int errno)
    {
        var kind = NetlinkFrame.ReadFirst(datagram, sequence, out _, out _, out errno);
        return kind != NetlinkFrameKind.NotFound ? kind : errno == 0 ? NetlinkFrameKind.Payload : NetlinkFrameKind.Error;
    }

    /// <summary>
    /// The packets of one datagram (the kernel may batch several messages in one); other messages are skipped, and a
    /// malformed one ends the walk.
    /// </summary>
    public static List<LoggedPacket> DecodePackets(ReadOnlySpan<byte> datagram)
    {
        var packets = new List<LoggedPacket>();
        var offset = 0;
        while (datagram.Length - offset >= NetlinkFrame.HeaderLength)
        {
            var length = (int)MemoryMarshal.Read<uint>(datagram[offset..]);
            if (length < NetlinkFrame.HeaderLength || length > datagram.Length - offset)
            {
                break;
            }

            var message = datagram.Slice(offset, length);
            var type = MemoryMarshal.Read<ushort>(message[4..]);
            if (type == ((SubsystemUlog << 8) | MessagePacket) && message.Length >= NetlinkFrame.HeaderLength + NfgenmsgLength)
            {
                packets.Add(DecodePacket(message[NetlinkFrame.HeaderLength] == FamilyIpv6, message[(NetlinkFrame.HeaderLength + NfgenmsgLength)..]));
            }

            offset += NetlinkAttribute.Align4(length);
        }

        return packets;
    }

    private static LoggedPacket DecodePacket(bool ipv6, ReadOnlySpan<byte> attributes)
    {
        string prefix = "";
        uint? uid = null;
        IPEndPoint? source = null;
        IPEndPoint? destination = null;
        var offset = 0;
        while (NetlinkAttribute.TryNext(attributes, ref offset, out var type, out var payload))
        {
            switch (type)
            {
                case AttributePrefix:
                    var end = payload.IndexOf((byte)0);
                    prefix = Encoding.UTF8.GetString(end >= 0 ? payload[..end] : payload);
                    break;
                case AttributeUid when payload.Length == 4:
                    uid = BinaryPrimitives.ReadUInt32BigEndian(payload);
                    break;
                case AttributePayload:
                    (source, destination) = ipv6 ? ReadIpv6(payload) : ReadIpv4(payload);
                    break;
            }
        }

        return new LoggedPacket(prefix, uid, source, destination);
    }

    private static (IPEndPoint?, IPEndPoint?) ReadIpv4(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 20 || packet[0] >> 4 != 4)
        {
            return (null, null);
        }

        var headerLength = (packet[0] & 0xF) * 4;
        var source = new IPAddress(packet[12..16]);
        var destination = new IPAddress(packet[16..20]);
        return packet[9] == ProtocolTcp && headerLength >= 20 && packet.Length >= headerLength + 4
            ? Ports(source, destination, packet[headerLength..])
            : (new IPEndPoint(source, 0), new IPEndPoint(destination, 0));
    }

    private static (IPEndPoint?, IPEndPoint?) ReadIpv6(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 40 || packet[0] >> 4 != 6)
        {
            return (null, null);
        }

        var source = new IPAddress(packet[8..24]);
        var destination = new IPAddress(packet[24..40]);

        // TCP after the extension headers a socket may add (IPV6_HOPOPTS, IPV6_RTHDR, IPV6_DSTOPTS) or a fragment header.
        // A routing header's destination is the first hop; the rest of the route is not followed.
        var next = packet[6];
        var offset = 40;
        while ((next is HopByHop or Routing or DestinationOptions or Fragment) && packet.Length >= offset + 8)
        {
            var length = next == Fragment ? 8 : (packet[offset + 1] + 1) * 8;
            next = packet[offset];
            offset += length;
        }

        return next == ProtocolTcp && packet.Length >= offset + 4
            ? Ports(source, destination, packet[offset..])
            : (new IPEndPoint(source, 0), new IPEndPoint(destination, 0));
    }

    private static (IPEndPoint, IPEndPoint) Ports(IPAddress source, IPAddress destination, ReadOnlySpan<byte> tcp) =>
        (new IPEndPoint(source, BinaryPrimitives.ReadUInt16BigEndian(tcp)), new IPEndPoint(destination, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..])));

    // nlmsghdr, nfgenmsg (AF_UNSPEC, NFNETLINK_V0, res_id = the group, big-endian) and one attribute's header; returns where
    // the attribute's payload starts. The message is cleared first, so its padding is zero.
    private static int Header(Span<byte> buffer, ushort group, uint sequence, ushort attribute, int payloadLength, out int total)
    {
        var start = NetlinkFrame.HeaderLength + NfgenmsgLength + 4;
        total = NetlinkFrame.HeaderLength + NfgenmsgLength + NetlinkAttribute.Align4(4 + payloadLength);
        buffer[..total].Clear();
        MemoryMarshal.Write(buffer, (uint)total);
        MemoryMarshal.Write(buffer[4..], (ushort)((SubsystemUlog << 8) | MessageConfig));
        MemoryMarshal.Write(buffer[6..], (ushort)(NlmFRequest | NlmFAck));
        MemoryMarshal.Write(buffer[8..], sequence);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(NetlinkFrame.HeaderLength + 2)..], group);
        MemoryMarshal.Write(buffer[(start - 4)..], (ushort)(4 + payloadLength)); // nla_len: without the padding
        MemoryMarshal.Write(buffer[(start - 2)..], attribute);
        return start;
    }
}
