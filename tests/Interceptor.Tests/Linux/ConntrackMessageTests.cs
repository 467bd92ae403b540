using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <remarks>
/// The request bytes were also built by an independent Python encoder and answered by a 6.18 kernel
/// (inside a namespace with an nft REDIRECT of port 25 to 10025); the reply fixtures are those
/// kernel answers, verbatim. Host-order fields are little-endian here, as on x86_64 and arm64.
/// </remarks>
[TestFixture]
public class ConntrackMessageTests
{
    // Reply tuple [127.0.0.1]:10025 -> 127.0.0.1:48780; original 127.0.0.1:48780 -> 127.0.0.6:25.
    private const string Ipv4RequestHex =
        "48000000010101000700000000000000" + "02000000" + "34000280" + "14000180" + "080001007f000001" + "080002007f000001"
        + "1c000280" + "0500010006000000" + "0600020027290000" + "06000300be8c0000";

    private const string Ipv4ReplyHex =
        "d40000000001020007000000e840000002000000340001801400018008000100"
        + "7f000001080002007f0000061c000280050001000600000006000200be8c0000"
        + "06000300001900003400028014000180080001007f000001080002007f000001"
        + "1c0002800500010006000000060002002729000006000300be8c000008000300"
        + "000001ae080008000000000008000c00dbdd070808000b000000000208000700"
        + "00069780300004802c0001800500010003000000050002000a00000005000300"
        + "0a00000006000400230000000600050023000000";

    // Reply tuple [::1]:10025 -> [2001:db8::6]:43186; original [2001:db8::6]:43186 -> [2001:db8::6]:25.
    private const string Ipv6RequestHex =
        "60000000010101000700000000000000" + "0a000000" + "4c000280" + "2c000180"
        + "14000300" + "00000000000000000000000000000001" + "14000400" + "20010db8000000000000000000000006"
        + "1c000280" + "0500010006000000" + "0600020027290000" + "06000300a8b20000";

    private const string Ipv6ReplyHex =
        "040100000001020007000000e84000000a0000004c0001802c00018014000300"
        + "20010db80000000000000000000000061400040020010db80000000000000000"
        + "000000061c000280050001000600000006000200a8b200000600030000190000"
        + "4c0002802c000180140003000000000000000000000000000000000114000400"
        + "20010db80000000000000000000000061c000280050001000600000006000200"
        + "2729000006000300a8b2000008000300000001ae080008000000000008000c00"
        + "7779fec408000b00000000020800070000069780300004802c00018005000100"
        + "03000000050002000a000000050003000a000000060004002300000006000500"
        + "23000000";

    [SetUp]
    public void LittleEndianOnly() => Assume.That(BitConverter.IsLittleEndian, "the fixtures are in little-endian host order");

    [Test]
    public void Ipv4_request_is_byte_exact()
    {
        var buffer = new byte[ConntrackMessage.MaximumRequestLength];

        var length = ConntrackMessage.EncodeGetByReply(buffer, 7, EndPoint("127.0.0.1:10025"), EndPoint("127.0.0.1:48780"));

        Assert.That(length, Is.EqualTo(ConntrackMessage.Ipv4RequestLength));
        Assert.That(Convert.ToHexStringLower(buffer, 0, length), Is.EqualTo(Ipv4RequestHex));
    }

    [Test]
    public void Ipv6_request_is_byte_exact()
    {
        var buffer = new byte[ConntrackMessage.MaximumRequestLength];

        var length = ConntrackMessage.EncodeGetByReply(buffer, 7, EndPoint("[::1]:10025"), EndPoint("[2001:db8::6]:43186"));

        Assert.That(length, Is.EqualTo(ConntrackMessage.Ipv6RequestLength));
        Assert.That(Convert.ToHexStringLower(buffer, 0, length), Is.EqualTo(Ipv6RequestHex));
    }

    [Test]
    public void Request_rejects_mixed_families_and_a_short_buffer()
    {
        Assert.Throws<ArgumentException>(() => ConntrackMessage.EncodeGetByReply(
            new byte[ConntrackMessage.MaximumRequestLength], 1, EndPoint("127.0.0.1:1"), EndPoint("[::1]:2")));
        Assert.Throws<ArgumentException>(() => ConntrackMessage.EncodeGetByReply(
            new byte[ConntrackMessage.Ipv4RequestLength], 1, EndPoint("[::1]:1"), EndPoint("[::1]:2")));
    }

    [Test]
    public void Ipv4_kernel_reply_gives_both_tuples()
    {
        Assert.That(ConntrackMessage.TryDecodeResponse(Convert.FromHexString(Ipv4ReplyHex), 7, out var reply), Is.True);

        Assert.That(reply.Status, Is.EqualTo(ConntrackStatus.Found));
        Assert.That(reply.Entry, Is.EqualTo(new ConntrackEntry(
            new ConntrackTuple(EndPoint("127.0.0.1:48780"), EndPoint("127.0.0.6:25")),
            new ConntrackTuple(EndPoint("127.0.0.1:10025"), EndPoint("127.0.0.1:48780")))));
    }

    [Test]
    public void Ipv6_kernel_reply_gives_both_tuples()
    {
        Assert.That(ConntrackMessage.TryDecodeResponse(Convert.FromHexString(Ipv6ReplyHex), 7, out var reply), Is.True);

        Assert.That(reply.Status, Is.EqualTo(ConntrackStatus.Found));
        Assert.That(reply.Entry, Is.EqualTo(new ConntrackEntry(
            new ConntrackTuple(EndPoint("[2001:db8::6]:43186"), EndPoint("[2001:db8::6]:25")),
            new ConntrackTuple(EndPoint("[::1]:10025"), EndPoint("[2001:db8::6]:43186")))));
    }

    [Test]
    public void Reply_to_another_request_is_reported_as_such()
    {
        Assert.That(ConntrackMessage.TryDecodeResponse(Convert.FromHexString(Ipv4ReplyHex), 8, out var reply), Is.True);
        Assert.That(reply.Status, Is.EqualTo(ConntrackStatus.OtherSequence));
    }

    [TestCase(2, "NotFound", 0)]
    [TestCase(0, "NotFound", 0)]
    [TestCase(1, "Error", 1)]
    [TestCase(95, "Error", 95)]
    public void Kernel_errors_map_to_not_found_or_the_errno(int errno, string status, int expectedErrno)
    {
        // nlmsghdr + nlmsgerr { int error; nlmsghdr echoed header } as the kernel sends for ENOENT.
        var message = new byte[16 + 4 + 16];
        MemoryMarshal.Write(message.AsSpan(0), (uint)message.Length);
        MemoryMarshal.Write(message.AsSpan(4), (ushort)2);
        MemoryMarshal.Write(message.AsSpan(8), 9u);
        MemoryMarshal.Write(message.AsSpan(16), -errno);

        Assert.That(ConntrackMessage.TryDecodeResponse(message, 9, out var reply), Is.True);
        Assert.That((reply.Status.ToString(), reply.Errno), Is.EqualTo((status, expectedErrno)));
    }

    [TestCase(0)]
    [TestCase(15)]
    [TestCase(19)]
    [TestCase(100)]
    [TestCase(211)]
    public void Truncated_datagram_is_rejected(int received)
    {
        var datagram = Convert.FromHexString(Ipv4ReplyHex);

        Assert.That(ConntrackMessage.TryDecodeResponse(datagram.AsSpan(0, received), 7, out _), Is.False);
    }

    [TestCase(20)]
    [TestCase(60)]
    [TestCase(100)]
    [TestCase(110)]
    public void Message_cut_inside_its_attributes_is_rejected(int length)
    {
        // nlmsg_len agrees with the datagram, but a nested attribute runs past the end.
        var datagram = Convert.FromHexString(Ipv4ReplyHex)[..length];
        MemoryMarshal.Write(datagram.AsSpan(0), (uint)length);

        Assert.That(ConntrackMessage.TryDecodeResponse(datagram, 7, out _), Is.False);
    }

    [TestCase(24, (byte)0x34, TestName = "orig IP nest claims more than its parent")]
    [TestCase(28, (byte)0x03, TestName = "attribute shorter than its header")]
    [TestCase(28, (byte)0x07, TestName = "IPv4 address of three bytes")]
    [TestCase(52, (byte)0x11, TestName = "UDP instead of TCP")]
    [TestCase(74, (byte)0x00, TestName = "reply tuple missing (type 0)")]
    [TestCase(74, (byte)0x01, TestName = "second original tuple")]
    [TestCase(16, (byte)0x07, TestName = "unknown address family")]
    public void Malformed_or_ambiguous_reply_is_rejected(int offset, byte value)
    {
        var datagram = Convert.FromHexString(Ipv4ReplyHex);
        datagram[offset] = value;

        Assert.That(ConntrackMessage.TryDecodeResponse(datagram, 7, out _), Is.False);
    }

    [Test]
    public void Lookup_with_mixed_families_asks_nothing()
    {
        using var lookup = new ConntrackLookup();

        Assert.That(lookup.FindByReply(EndPoint("127.0.0.1:10025"), EndPoint("[2001:db8::1]:4000")), Is.Null);
    }

    private static IPEndPoint EndPoint(string text) => IPEndPoint.Parse(text);
}
