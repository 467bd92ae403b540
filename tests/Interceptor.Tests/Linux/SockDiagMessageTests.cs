using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public class SockDiagMessageTests
{
    private static uint Host32(ReadOnlySpan<byte> bytes) => MemoryMarshal.Read<uint>(bytes);

    private static ushort Host16(ReadOnlySpan<byte> bytes) => MemoryMarshal.Read<ushort>(bytes);

    [Test]
    public void Ipv4_request_has_the_kernel_layout()
    {
        var buffer = new byte[SockDiagMessage.RequestLength];
        SockDiagMessage.EncodeRequest(
            buffer,
            sequence: 0x01020304,
            new IPEndPoint(IPAddress.Parse("10.1.2.3"), 40000),
            new IPEndPoint(IPAddress.Parse("203.0.113.5"), 25));

        Assert.Multiple(() =>
        {
            // nlmsghdr
            Assert.That(Host32(buffer.AsSpan(0)), Is.EqualTo(72u), "nlmsg_len");
            Assert.That(Host16(buffer.AsSpan(4)), Is.EqualTo(20), "nlmsg_type SOCK_DIAG_BY_FAMILY");
            Assert.That(Host16(buffer.AsSpan(6)), Is.EqualTo(1), "nlmsg_flags NLM_F_REQUEST only");
            Assert.That(Host32(buffer.AsSpan(8)), Is.EqualTo(0x01020304u), "nlmsg_seq");
            Assert.That(Host32(buffer.AsSpan(12)), Is.EqualTo(0u), "nlmsg_pid");

            // inet_diag_req_v2
            Assert.That(buffer[16], Is.EqualTo(2), "family AF_INET");
            Assert.That(buffer[17], Is.EqualTo(6), "protocol TCP");
            Assert.That(buffer[18], Is.EqualTo(0), "ext");
            Assert.That(buffer[19], Is.EqualTo(0), "pad");
            Assert.That(Host32(buffer.AsSpan(20)), Is.EqualTo(0xFFFFFFFFu), "all states");
            Assert.That(buffer[24..26], Is.EqualTo(new byte[] { 0x9C, 0x40 }), "sport big-endian 40000");
            Assert.That(buffer[26..28], Is.EqualTo(new byte[] { 0x00, 0x19 }), "dport big-endian 25");
            Assert.That(buffer[28..44], Is.EqualTo(new byte[] { 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }), "src");
            Assert.That(buffer[44..60], Is.EqualTo(new byte[] { 203, 0, 113, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }), "dst");
            Assert.That(Host32(buffer.AsSpan(60)), Is.EqualTo(0u), "if");
            Assert.That(buffer[64..72], Is.All.EqualTo(0xFF), "cookie = INET_DIAG_NOCOOKIE");
        });
    }

    [Test]
    public void Ipv6_request_carries_full_addresses()
    {
        var buffer = new byte[SockDiagMessage.RequestLength];
        var client = IPAddress.Parse("2001:db8::1");
        var destination = IPAddress.Parse("2001:db8:ffff::25");
        SockDiagMessage.EncodeRequest(buffer, 7, new IPEndPoint(client, 1025), new IPEndPoint(destination, 587));

        Assert.Multiple(() =>
        {
            Assert.That(buffer[16], Is.EqualTo(10), "family AF_INET6");
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(24)), Is.EqualTo(1025));
            Assert.That(BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(26)), Is.EqualTo(587));
            Assert.That(buffer[28..44], Is.EqualTo(client.GetAddressBytes()));
            Assert.That(buffer[44..60], Is.EqualTo(destination.GetAddressBytes()));
        });
    }

    [Test]
    public void Mixed_families_are_rejected()
    {
        var buffer = new byte[SockDiagMessage.RequestLength];
        Assert.Throws<ArgumentException>(() => SockDiagMessage.EncodeRequest(
            buffer, 1, new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.IPv6Loopback, 2)));
    }

    [Test]
    public void Reply_with_inet_diag_msg_gives_uid_and_inode()
    {
        var reply = BuildMessage(length: 88 + 8, type: 20, sequence: 42);
        MemoryMarshal.Write(reply.AsSpan(80), 1001u);
        MemoryMarshal.Write(reply.AsSpan(84), 987654u);

        var ok = SockDiagMessage.TryDecodeResponse(reply, 42, out var decoded);

        Assert.That(ok, Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.Found));
        Assert.That(decoded.Owner, Is.EqualTo(new SocketOwner(1001, 987654)));
    }

    [Test]
    public void Error_enoent_means_not_found()
    {
        var reply = BuildError(sequence: 5, errno: 2);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 5, out var decoded), Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.NotFound));
    }

    [Test]
    public void Other_errors_carry_the_errno()
    {
        var reply = BuildError(sequence: 5, errno: 22);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 5, out var decoded), Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.Error));
        Assert.That(decoded.Errno, Is.EqualTo(22));
    }

    [Test]
    public void Reply_to_another_request_is_reported_as_such()
    {
        var reply = BuildMessage(length: 88, type: 20, sequence: 41);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 42, out var decoded), Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.OtherSequence));
    }

    [TestCase(0)]
    [TestCase(15)]
    [TestCase(60)]
    [TestCase(87)]
    public void Truncated_datagram_is_rejected(int received)
    {
        var reply = BuildMessage(length: 88, type: 20, sequence: 1);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply.AsSpan(0, received), 1, out _), Is.False);
    }

    [Test]
    public void Header_claiming_less_than_an_inet_diag_msg_is_rejected()
    {
        var reply = BuildMessage(length: 88, type: 20, sequence: 1);
        MemoryMarshal.Write(reply.AsSpan(0), 40u);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 1, out _), Is.False);
    }

    private static byte[] BuildMessage(int length, ushort type, uint sequence)
    {
        var message = new byte[length];
        MemoryMarshal.Write(message.AsSpan(0), (uint)length);
        MemoryMarshal.Write(message.AsSpan(4), type);
        MemoryMarshal.Write(message.AsSpan(8), sequence);
        message[16] = 2; // AF_INET
        return message;
    }

    private static byte[] BuildError(uint sequence, int errno)
    {
        // nlmsghdr + nlmsgerr { int error; struct nlmsghdr msg } + the echoed request
        var message = BuildMessage(16 + 4 + 72, 2, sequence);
        MemoryMarshal.Write(message.AsSpan(16), -errno);
        return message;
    }
}
