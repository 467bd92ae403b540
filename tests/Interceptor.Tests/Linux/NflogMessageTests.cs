using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <summary>
/// The NFLOG messages byte by byte, for what the kernel test (NflogKernelTests) cannot make a socket send: IPv6 extension
/// headers, several messages in one datagram, an error answer.
/// </summary>
public class NflogMessageTests
{
    [Test]
    public void The_bind_request_names_the_group_big_endian_and_asks_for_an_ack()
    {
        Span<byte> request = stackalloc byte[NflogMessage.ConfigRequestLength];
        var length = NflogMessage.EncodeBind(request, 0x1234, 7);
        var message = request[..length].ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(length, Is.EqualTo(28), "header 16, nfgenmsg 4, one attribute of 5 bytes padded to 8");
            Assert.That(BitConverter.ToUInt32(message, 0), Is.EqualTo(28u));
            Assert.That(BitConverter.ToUInt16(message, 4), Is.EqualTo(0x0401), "NFNL_SUBSYS_ULOG, NFULNL_MSG_CONFIG");
            Assert.That(BitConverter.ToUInt16(message, 6), Is.EqualTo(5), "NLM_F_REQUEST | NLM_F_ACK");
            Assert.That(message[18..20], Is.EqualTo(new byte[] { 0x12, 0x34 }), "res_id, big-endian");
            Assert.That(message[20..25], Is.EqualTo(new byte[] { 5, 0, 1, 0, 1 }), "NFULA_CFG_CMD, NFULNL_CFG_CMD_BIND");
        });
    }

    [Test]
    public void An_ipv6_syn_behind_extension_headers_keeps_its_ports()
    {
        // Hop-by-hop (8 bytes) and a routing header (24 bytes) before TCP, as IPV6_HOPOPTS and IPV6_RTHDR would put them.
        var packet = new byte[40 + 8 + 24 + 20];
        packet[0] = 0x60;
        packet[6] = 0; // hop-by-hop
        IPAddress.Parse("2001:db8::1").GetAddressBytes().CopyTo(packet, 8);
        IPAddress.Parse("2001:db8::25").GetAddressBytes().CopyTo(packet, 24);
        packet[40] = 43; // next: routing
        packet[41] = 0; // (0 + 1) * 8 bytes
        packet[48] = 6; // next: TCP
        packet[49] = 2; // (2 + 1) * 8 bytes
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(72), 41025);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(74), 25);

        var decoded = NflogMessage.DecodePackets(Datagram(Message(10, packet, 1001), Message(10, packet, null)));

        Assert.That(decoded, Has.Count.EqualTo(2), "two messages in one datagram");
        Assert.Multiple(() =>
        {
            Assert.That(decoded[0].Source, Is.EqualTo(IPEndPoint.Parse("[2001:db8::1]:41025")));
            Assert.That(decoded[0].Destination, Is.EqualTo(IPEndPoint.Parse("[2001:db8::25]:25")));
            Assert.That(decoded[0].Uid, Is.EqualTo(1001u));
            Assert.That(decoded[0].Prefix, Is.EqualTo("p"));
            Assert.That(decoded[1].Uid, Is.Null, "no NFULA_UID: a packet without an owning socket");
        });
    }

    [Test]
    public void An_error_answer_is_an_error_whatever_its_errno()
    {
        var error = new byte[36];
        MemoryMarshal.Write(error, 36u);
        MemoryMarshal.Write(error.AsSpan(4), (ushort)2); // NLMSG_ERROR
        MemoryMarshal.Write(error.AsSpan(8), 3u);
        MemoryMarshal.Write(error.AsSpan(16), -2); // -ENOENT

        Assert.That(NflogMessage.TryDecodeAck(error, 3, out var errno), Is.EqualTo(NetlinkFrameKind.Error));
        Assert.That(errno, Is.EqualTo(2));
        MemoryMarshal.Write(error.AsSpan(16), 0);
        Assert.That(NflogMessage.TryDecodeAck(error, 3, out _), Is.EqualTo(NetlinkFrameKind.Payload), "errno 0: the ack");
    }

    // One NFULNL_MSG_PACKET: prefix "p", the uid when given, the packet.
    private static byte[] Message(byte family, byte[] packet, uint? uid)
    {
        var attributes = new List<byte>();
        Attribute(attributes, 10, "p\0"u8.ToArray());
        if (uid is { } value)
        {
            var be = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(be, value);
            Attribute(attributes, 11, be);
        }

        Attribute(attributes, 9, packet);
        var message = new byte[20 + attributes.Count];
        MemoryMarshal.Write(message, (uint)message.Length);
        MemoryMarshal.Write(message.AsSpan(4), (ushort)0x0400);
        message[16] = family;
        attributes.CopyTo(message, 20);
        return message;
    }

    private static void Attribute(List<byte> into, ushort type, byte[] payload)
    {
        into.AddRange(BitConverter.GetBytes((ushort)(4 + payload.Length)));
        into.AddRange(BitConverter.GetBytes(type));
        into.AddRange(payload);
        while (into.Count % 4 != 0)
        {
            into.Add(0);
        }
    }

    private static byte[] Datagram(params byte[][] messages) => [.. messages.SelectMany(m => m)];
}
