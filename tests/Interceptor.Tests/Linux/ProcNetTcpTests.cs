using System.Net;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public class ProcNetTcpTests
{
    // Written in the kernel's format (tcp4_seq_show / tcp6_seq_show) as a little-endian host
    // prints it: each address word is the in-memory network-order bytes read as a host u32.
    private const string Tcp4 =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n" +
        // listener 127.0.0.1:10017, root
        "   0: 0100007F:2721 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23456 1 0000000000000000 100 0 0 10 0                     \n" +
        // the redirected client: 127.0.0.1:47074 -> 127.0.0.2:25, uid 65534
        "   1: 0100007F:B7E2 0200007F:0019 01 00000000:00000000 00:00000000 00000000 65534        0 77777 1 0000000000000000 20 4 30 10 -1                    \n" +
        // the daemon's accepted side of the same connection: 127.0.0.1:10025 -> 127.0.0.1:47074
        "   2: 0100007F:2729 0100007F:B7E2 01 00000000:00000000 00:00000000 00000000   110        0 88888 1 0000000000000000 20 4 30 10 -1                    \n" +
        // same client port, another remote: 127.0.0.1:47074 -> 203.0.113.5:25
        "   3: 0100007F:B7E2 057100CB:0019 01 00000000:00000000 00:00000000 00000000  1001        0 99999 1 0000000000000000 20 4 30 10 -1                    \n";

    private const string Tcp6 =
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
        // [::1]:47075 -> [2001:db8::25]:25, uid 1001
        "   0: 00000000000000000000000001000000:B7E3 B80D0120000000000000000025000000:0019 01 00000000:00000000 00:00000000 00000000  1001        0 55555 1 0000000000000000 20 4 30 10 -1\n" +
        // dual-stack socket: [::ffff:127.0.0.1]:40000 -> [::ffff:127.0.0.2]:25, uid 1002
        "   1: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000200007F:0019 01 00000000:00000000 00:00000000 00000000  1002        0 66666 1 0000000000000000 20 4 30 10 -1\n";

    [SetUp]
    public void RequireLittleEndian() =>
        Assume.That(BitConverter.IsLittleEndian, "samples are written as a little-endian kernel prints them");

    private static IPEndPoint Ep(string address, int port) => new(IPAddress.Parse(address), port);

    [Test]
    public void Finds_the_client_row_by_local_and_original_remote()
    {
        var owner = ProcNetTcp.FindOwner(Tcp4, Ep("127.0.0.1", 47074), Ep("127.0.0.2", 25));

        Assert.That(owner, Is.EqualTo(new SocketOwner(65534, 77777)));
    }

    [Test]
    public void Distinguishes_rows_sharing_the_local_endpoint()
    {
        var owner = ProcNetTcp.FindOwner(Tcp4, Ep("127.0.0.1", 47074), Ep("203.0.113.5", 25));

        Assert.That(owner, Is.EqualTo(new SocketOwner(1001, 99999)));
    }

    [Test]
    public void Returns_null_when_no_row_matches()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ProcNetTcp.FindOwner(Tcp4, Ep("127.0.0.1", 47074), Ep("127.0.0.3", 25)), Is.Null);
            Assert.That(ProcNetTcp.FindOwner(Tcp4, Ep("127.0.0.1", 47075), Ep("127.0.0.2", 25)), Is.Null);
            Assert.That(ProcNetTcp.FindOwner(string.Empty, Ep("127.0.0.1", 47074), Ep("127.0.0.2", 25)), Is.Null);
        });
    }

    [Test]
    public void Finds_an_ipv6_row()
    {
        var owner = ProcNetTcp.FindOwner(Tcp6, Ep("::1", 47075), Ep("2001:db8::25", 25));

        Assert.That(owner, Is.EqualTo(new SocketOwner(1001, 55555)));
    }

    [Test]
    public void Ipv4_query_matches_a_dual_stack_row_with_mapped_addresses()
    {
        var owner = ProcNetTcp.FindOwner(Tcp6, Ep("127.0.0.1", 40000), Ep("127.0.0.2", 25));

        Assert.That(owner, Is.EqualTo(new SocketOwner(1002, 66666)));
    }

    [Test]
    public void Prefers_a_live_row_over_a_time_wait_row_with_the_same_tuple()
    {
        const string rows =
            // TIME_WAIT: no process holds it; the kernel prints uid 0 and inode 0
            "   0: 0100007F:B7E2 0200007F:0019 06 00000000:00000000 03:00000F9B 00000000     0        0 0 3 0000000000000000\n" +
            "   1: 0100007F:B7E2 0200007F:0019 01 00000000:00000000 00:00000000 00000000  1001        0 4242 1 0000000000000000 20 4 30 10 -1\n";

        var owner = ProcNetTcp.FindOwner(rows, Ep("127.0.0.1", 47074), Ep("127.0.0.2", 25));

        Assert.That(owner, Is.EqualTo(new SocketOwner(1001, 4242)));
    }

    [Test]
    public void A_lone_time_wait_row_is_no_answer()
    {
        const string rows =
            "   0: 0100007F:B7E2 0200007F:0019 06 00000000:00000000 03:00000F9B 00000000     0        0 0 3 0000000000000000\n";

        var owner = ProcNetTcp.FindOwner(rows, Ep("127.0.0.1", 47074), Ep("127.0.0.2", 25));

        Assert.That(owner, Is.Null, "TIME_WAIT is no connected socket");
    }

    [Test]
    public void A_listener_row_is_never_an_answer()
    {
        // The listener 127.0.0.1:10017 (root) of Tcp4, asked for with its own wildcard remote end.
        Assert.That(ProcNetTcp.FindOwner(Tcp4, Ep("127.0.0.1", 10017), Ep("0.0.0.0", 0)), Is.Null);
    }

    [TestCase("04", true, TestName = "FIN_WAIT1 (half-closed client) is an answer")]
    [TestCase("05", true, TestName = "FIN_WAIT2 (half-closed client) is an answer")]
    [TestCase("08", false, TestName = "CLOSE_WAIT is not")]
    [TestCase("03", false, TestName = "SYN_RECV is not")]
    [TestCase("0A", false, TestName = "LISTEN is not")]
    [TestCase("0B", false, TestName = "CLOSING is not")]
    public void Only_connected_rows_are_answers(string state, bool answer)
    {
        var rows = "   0: 0100007F:B7E2 0200007F:0019 " + state + " 00000000:00000000 00:00000000 00000000  1001        0 4242 1 0000000000000000 20 4 30 10 -1\n";

        var owner = ProcNetTcp.FindOwner(rows, Ep("127.0.0.1", 47074), Ep("127.0.0.2", 25));

        Assert.That(owner, answer ? Is.EqualTo(new SocketOwner(1001, 4242)) : Is.Null);
    }

    [TestCase("0100007F:0019", "127.0.0.1", 25)]
    [TestCase("057100CB:FFFF", "203.0.113.5", 65535)]
    [TestCase("00000000000000000000000001000000:2729", "::1", 10025)]
    [TestCase("B80D0120000000000000000025000000:0019", "2001:db8::25", 25)]
    public void Parses_kernel_endpoints(string text, string address, int port)
    {
        Assert.That(ProcNetTcp.TryParseEndPoint(text, out var endPoint), Is.True);
        Assert.That(endPoint, Is.EqualTo(Ep(address, port)));
    }

    [TestCase("")]
    [TestCase("0100007F")]
    [TestCase("0100007:0019")]
    [TestCase("0100007G:0019")]
    [TestCase("0100007F:1FFFF")]
    public void Rejects_malformed_endpoints(string text)
    {
        Assert.That(ProcNetTcp.TryParseEndPoint(text, out _), Is.False);
    }
}
