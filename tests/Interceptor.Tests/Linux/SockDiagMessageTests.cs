using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <remarks>
/// The reply fixtures are a 6.18 kernel's answers, verbatim, to requests built by an independent Python encoder
/// (sequence 7), run as uid 65534 (nobody) on loopback: a listener on 127.0.0.1:33805, a client 127.0.0.1:60938
/// connected to it, a dual-stack listener on [::]:42911 with an IPv4 client (58144) and an IPv6 one (48692).
/// Host-order fields are little-endian here, as on x86_64 and arm64.
/// </remarks>
[TestFixture]
public class SockDiagMessageTests
{
    private const uint Sequence = 7;
    private const uint Nobody = 65534;

    // Asked for 127.0.0.1:33805 -> 127.0.0.3:25 (no such socket; 33805 is a listener's port) with the connected
    // states only: the kernel still answers with the LISTEN socket 127.0.0.1:33805 -> 0.0.0.0:0 and its uid.
    private const string AskedListenerPortRequestHex =
        "480000001400010007000000000000000206000032000000840d00197f0000010000000000000000000000007f000003"
        + "00000000000000000000000000000000ffffffffffffffff";

    private const string ListenerReplyHex =
        "7400000014000000070000003f480000020a0000840d00007f0000010000000000000000000000000000000000000000"
        + "0000000000000000000000001141000000000000000000000000000005000000feff0000bc400a000500080000000000"
        + "0c00150001000000000000000600160052000000";

    // 127.0.0.1:60938 -> 127.0.0.1:33805, ESTABLISHED, inode 671935.
    private const string EstablishedReplyHex =
        "7400000014000000070000003f48000002010000ee0a840d7f0000010000000000000000000000007f00000100000000"
        + "0000000000000000000000001241000000000000000000000000000000000000feff0000bf400a000500080000000000"
        + "0c00150001000000000000000600160052000000";

    // The same client after shutdown(SHUT_WR): FIN_WAIT2, still held by its process.
    private const string FinWait2ReplyHex =
        "7400000014000000070000003f48000002050000ee0a840d7f0000010000000000000000000000007f00000100000000"
        + "0000000000000000000000001241000000000000000000000000000000000000feff0000bf400a000500080002000000"
        + "0c00150001000000000000000600160052000000";

    // The accepted side 127.0.0.1:33805 -> 127.0.0.1:60938 once the client half-closed: CLOSE_WAIT.
    private const string CloseWaitReplyHex =
        "7400000014000000070000003f48000002080000840dee0a7f0000010000000000000000000000007f00000100000000"
        + "0000000000000000000000001341000000000000000000000100000000000000feff0000c0400a000500080001000000"
        + "0c00150001000000000000000600160052000000";

    // The client 127.0.0.1:60938 -> 127.0.0.1:33805 after both closed: TIME_WAIT, uid 0, inode 0.
    private const string TimeWaitReplyHex =
        "5800000014000000070000003f48000002060300ee0a840d7f0000010000000000000000000000007f00000100000000"
        + "000000000000000000000000124100000000000098e9000000000000000000000000000000000000";

    // Asked (AF_INET) for 127.0.0.1:58144 -> 127.0.0.1:42911: the dual-stack client answers as AF_INET6 with mapped addresses.
    private const string DualStackReplyHex =
        "7400000014000000070000003f4800000a010000e320a79f00000000000000000000ffff7f0000010000000000000000"
        + "0000ffff7f000001000000001441000000000000000000000000000000000000feff0000cd400a000500080000000000"
        + "0c00150001000000000000000600160012000000";

    // Asked (AF_INET) for 127.0.0.1:42911 -> 127.0.0.3:25: the dual-stack listener [::]:42911 answers.
    private const string DualStackListenerReplyHex =
        "7c00000014000000070000003f4800000a0a0000a79f0000000000000000000000000000000000000000000000000000"
        + "0000000000000000000000001541000000000000000000000000000005000000feff0000cc400a000500080000000000"
        + "05000b00000000000c00150001000000000000000600160012000000";

    // [::1]:48692 -> [::1]:42911, ESTABLISHED.
    private const string Ipv6ReplyHex =
        "7400000014000000070000003f4800000a010000be34a79f000000000000000000000000000000010000000000000000"
        + "0000000000000001000000001641000000000000000000000000000000000000feff0000d1400a000500080000000000"
        + "0c00150001000000000000000600160012000000";

    private static IPEndPoint Ep(string text) => IPEndPoint.Parse(text);

    private static SockDiagReply Decode(string hex, string source, string destination)
    {
        Assert.That(SockDiagMessage.TryDecodeResponse(Convert.FromHexString(hex), Sequence, Ep(source), Ep(destination), out var reply), Is.True);
        return reply;
    }

    [SetUp]
    public void LittleEndianOnly() => Assume.That(BitConverter.IsLittleEndian, "the fixtures are in little-endian host order");

    [Test]
    public void Request_asks_for_connected_states_only_byte_exact()
    {
        var buffer = new byte[SockDiagMessage.RequestLength];

        SockDiagMessage.EncodeRequest(buffer, Sequence, Ep("127.0.0.1:33805"), Ep("127.0.0.3:25"));

        Assert.That(Convert.ToHexStringLower(buffer), Is.EqualTo(AskedListenerPortRequestHex));
    }

    [Test]
    public void Listener_answering_a_miss_is_not_the_socket_asked_for()
    {
        // The attack of issue 12.2: the exact 4-tuple misses and the kernel answers with whoever listens on the port.
        var reply = Decode(ListenerReplyHex, "127.0.0.1:33805", "127.0.0.3:25");

        Assert.Multiple(() =>
        {
            Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.OtherSocket));
            Assert.That(reply.Socket!.Value.State, Is.EqualTo(TcpState.Listen));
            Assert.That(reply.Socket.Value.Uid, Is.EqualTo(Nobody), "the listener's owner, which must not be trusted");
            Assert.That(reply.Socket.Value.Inode, Is.Not.Zero);
            Assert.That(reply.Socket.Value.Local, Is.EqualTo(Ep("127.0.0.1:33805")));
            Assert.That(reply.Socket.Value.Remote, Is.EqualTo(Ep("0.0.0.0:0")));
        });
    }

    [Test]
    public void Listener_is_refused_even_when_asked_for_its_own_wildcard_tuple()
    {
        var reply = Decode(ListenerReplyHex, "127.0.0.1:33805", "0.0.0.0:0");

        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.OtherSocket));
    }

    [Test]
    public void Dual_stack_listener_answering_an_ipv4_miss_is_refused()
    {
        var reply = Decode(DualStackListenerReplyHex, "127.0.0.1:42911", "127.0.0.3:25");

        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.OtherSocket));
        Assert.That(reply.Socket!.Value.State, Is.EqualTo(TcpState.Listen));
    }

    [Test]
    public void Established_client_socket_asked_for_exactly_gives_uid_and_inode()
    {
        var reply = Decode(EstablishedReplyHex, "127.0.0.1:60938", "127.0.0.1:33805");

        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.Found));
        Assert.That(reply.Owner, Is.EqualTo(new SocketOwner(Nobody, 671935)));
    }

    [TestCase("127.0.0.1:60939", "127.0.0.1:33805", TestName = "another client port")]
    [TestCase("127.0.0.2:60938", "127.0.0.1:33805", TestName = "another client address")]
    [TestCase("127.0.0.1:60938", "127.0.0.1:25", TestName = "another destination port")]
    [TestCase("127.0.0.1:60938", "127.0.0.3:33805", TestName = "another destination address")]
    [TestCase("127.0.0.1:33805", "127.0.0.1:60938", TestName = "the reversed tuple")]
    [TestCase("[::1]:60938", "[::1]:33805", TestName = "another family")]
    public void Reply_for_another_tuple_is_not_trusted(string source, string destination)
    {
        var reply = Decode(EstablishedReplyHex, source, destination);

        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.OtherSocket));
    }

    [Test]
    public void Half_closed_client_still_holding_its_socket_is_accepted()
    {
        var reply = Decode(FinWait2ReplyHex, "127.0.0.1:60938", "127.0.0.1:33805");

        Assert.That(reply.Socket!.Value.State, Is.EqualTo(TcpState.FinWait2));
        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.Found));
        Assert.That(reply.Owner, Is.EqualTo(new SocketOwner(Nobody, 671935)));
    }

    [Test]
    public void Close_wait_is_refused()
    {
        var reply = Decode(CloseWaitReplyHex, "127.0.0.1:33805", "127.0.0.1:60938");

        Assert.That(reply.Socket!.Value.State, Is.EqualTo(TcpState.CloseWait));
        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.OtherSocket));
    }

    [Test]
    public void Time_wait_is_refused()
    {
        var reply = Decode(TimeWaitReplyHex, "127.0.0.1:60938", "127.0.0.1:33805");

        Assert.That(reply.Socket!.Value.State, Is.EqualTo(TcpState.TimeWait));
        Assert.That(reply.Socket.Value.Uid, Is.Zero);
        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.OtherSocket));
    }

    [Test]
    public void Dual_stack_client_answers_an_ipv4_request_with_mapped_addresses()
    {
        var reply = Decode(DualStackReplyHex, "127.0.0.1:58144", "127.0.0.1:42911");

        Assert.That(reply.Socket!.Value.Family, Is.EqualTo(System.Net.Sockets.AddressFamily.InterNetworkV6));
        Assert.That(reply.Status, Is.EqualTo(SockDiagStatus.Found));
        Assert.That(reply.Owner.Uid, Is.EqualTo(Nobody));
    }

    [Test]
    public void Ipv6_client_socket_is_found_and_checked()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Decode(Ipv6ReplyHex, "[::1]:48692", "[::1]:42911").Status, Is.EqualTo(SockDiagStatus.Found));
            Assert.That(Decode(Ipv6ReplyHex, "[::1]:48692", "[::1]:42912").Status, Is.EqualTo(SockDiagStatus.OtherSocket));
            Assert.That(Decode(Ipv6ReplyHex, "[::1]:48692", "[::2]:42911").Status, Is.EqualTo(SockDiagStatus.OtherSocket));
        });
    }

    [TestCase((byte)1, true, TestName = "Established is trusted")]
    [TestCase((byte)4, true, TestName = "FinWait1 is trusted")]
    [TestCase((byte)5, true, TestName = "FinWait2 is trusted")]
    [TestCase((byte)10, false, TestName = "Listen is not trusted")]
    [TestCase((byte)3, false, TestName = "SynReceived is not trusted")]
    [TestCase((byte)12, false, TestName = "NewSynReceived is not trusted")]
    [TestCase((byte)2, false, TestName = "SynSent is not trusted")]
    [TestCase((byte)6, false, TestName = "TimeWait is not trusted")]
    [TestCase((byte)8, false, TestName = "CloseWait is not trusted")]
    [TestCase((byte)9, false, TestName = "LastAck is not trusted")]
    [TestCase((byte)11, false, TestName = "Closing is not trusted")]
    [TestCase((byte)7, false, TestName = "Close is not trusted")]
    public void Only_connected_states_are_trusted(byte state, bool trusted)
    {
        var bytes = Convert.FromHexString(EstablishedReplyHex);
        bytes[17] = state;

        SockDiagMessage.TryDecodeResponse(bytes, Sequence, Ep("127.0.0.1:60938"), Ep("127.0.0.1:33805"), out var reply);

        Assert.That(reply.Status, Is.EqualTo(trusted ? SockDiagStatus.Found : SockDiagStatus.OtherSocket));
        Assert.That((SockDiagMessage.ConnectedStates & (1u << state)) != 0, Is.EqualTo(trusted), "the request's state mask");
    }

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
            Assert.That(Host32(buffer.AsSpan(20)), Is.EqualTo((1u << 1) | (1u << 4) | (1u << 5)), "ESTABLISHED, FIN_WAIT1, FIN_WAIT2 only");
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
    public void Error_enoent_means_not_found()
    {
        var reply = BuildError(sequence: 5, errno: 2);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 5, Any, Any, out var decoded), Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.NotFound));
    }

    [Test]
    public void Other_errors_carry_the_errno()
    {
        var reply = BuildError(sequence: 5, errno: 22);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 5, Any, Any, out var decoded), Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.Error));
        Assert.That(decoded.Errno, Is.EqualTo(22));
    }

    [Test]
    public void Reply_to_another_request_is_reported_as_such()
    {
        var reply = BuildMessage(length: 88, type: 20, sequence: 41);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 42, Any, Any, out var decoded), Is.True);
        Assert.That(decoded.Status, Is.EqualTo(SockDiagStatus.OtherSequence));
    }

    [TestCase(0)]
    [TestCase(15)]
    [TestCase(60)]
    [TestCase(87)]
    public void Truncated_datagram_is_rejected(int received)
    {
        var reply = BuildMessage(length: 88, type: 20, sequence: 1);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply.AsSpan(0, received), 1, Any, Any, out _), Is.False);
    }

    [Test]
    public void Header_claiming_less_than_an_inet_diag_msg_is_rejected()
    {
        var reply = BuildMessage(length: 88, type: 20, sequence: 1);
        MemoryMarshal.Write(reply.AsSpan(0), 40u);

        Assert.That(SockDiagMessage.TryDecodeResponse(reply, 1, Any, Any, out _), Is.False);
    }

    private static readonly IPEndPoint Any = new(IPAddress.Loopback, 1);

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
