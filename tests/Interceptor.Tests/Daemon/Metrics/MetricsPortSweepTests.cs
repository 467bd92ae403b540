using System.Net;
using System.Net.Sockets;
using Interceptor.Daemon.Metrics;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Interceptor.Tests.Linux;
using Interceptor.Tests.Netfilter;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>
/// The sweep after each change of the table (MetricsPortSweep.cs), against the kernel in a throwaway namespace: what a
/// customer's socket holds on the metrics port towards a local client, made while the table had no metrics rules, is
/// aborted by the kernel, whether accepted, waiting in her listener's queue or orphaned, so the scraper's next request
/// (and token) never reaches her and her last answer never leaves; the daemon's own connections on the port, and her
/// connections to other hosts, are left alone.
/// </summary>
[NonParallelizable]
public class MetricsPortSweepTests
{
    private const uint Nobody = 65534;
    private const uint Daemon = 995;

    // As nobody: listens on 127.0.0.1:9325, accepts one connection, then prints what its first read gave: "got TEXT",
    // "eof", or "error ERRNO" (103 is ECONNABORTED, what the kernel's abort leaves the owner).
    private const string SquatterScript = """
        import socket
        server = socket.create_server(("127.0.0.1", 9325))
        print("ready", flush=True)
        connection, _ = server.accept()
        print("accepted", flush=True)
        try:
            data = connection.recv(100)
            print("got " + data.decode() if data else "eof", flush=True)
        except OSError as e:
            print("error", e.errno, flush=True)
        """;

    // As nobody: listens on 127.0.0.1:9325 and accepts nothing for 3 s (the test installs the rules and sweeps then), then
    // prints what accept() gave: "accepted", "nothing to accept" or "error ERRNO" (22, EINVAL: the listener was closed).
    private const string LateAcceptScript = """
        import socket, time
        server = socket.create_server(("127.0.0.1", 9325))
        print("ready", flush=True)
        time.sleep(3)
        server.settimeout(2)
        try:
            server.accept()
            print("accepted", flush=True)
        except socket.timeout:
            print("nothing to accept", flush=True)
        except OSError as e:
            print("error", e.errno, flush=True)
        """;

    // As nobody: accepts one connection, writes until the kernel takes no more, closes (the socket is then an orphan still
    // sending), says "closed" and stays for 20 s, holding the listener.
    private const string OrphanScript = """
        import socket, time
        server = socket.create_server(("127.0.0.1", 9325))
        print("ready", flush=True)
        connection, _ = server.accept()
        connection.setblocking(False)
        try:
            while True:
                connection.send(b"x" * 65536)
        except BlockingIOError:
            pass
        connection.close()
        print("closed", flush=True)
        time.sleep(20)
        """;

    [Test]
    public async Task A_connection_a_customer_accepted_on_the_port_before_the_rules_is_aborted_and_the_daemons_own_stays()
    {
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        using var squatter = ns.StartAs(Nobody, SquatterScript);
        using var scraper = InNetworkNamespace.Open(ns, () => LoopbackSockets.Connected(IPEndPoint.Parse("127.0.0.1:9325")));
        Assert.That(squatter.NextLine(TimeSpan.FromSeconds(5)), Is.EqualTo("accepted"), "no rules yet: the scraper's connection reaches her");

        // Root stands for the daemon here (the spec's MetricsServerUid is 0): its connection on [::1]:9325 is its own.
        using var ours = InNetworkNamespace.Open(ns, () => LoopbackSockets.Listening(IPEndPoint.Parse("[::1]:9325")));
        using var ourClient = InNetworkNamespace.Open(ns, () => LoopbackSockets.Connected(IPEndPoint.Parse("[::1]:9325")));
        using var ourServer = ours.Accept();

        var (sweep, log) = await InstallAndSweepAsync(ns, 0);

        var sent = LoopbackSockets.SendTwice(scraper, "token");
        var herRead = squatter.NextLine(TimeSpan.FromSeconds(5));
        LoopbackSockets.SendTwice(ourClient, "ours");
        var buffer = new byte[16];
        ourServer.ReceiveTimeout = 2000;
        var ourRead = ourServer.Receive(buffer);

        Assert.Multiple(() =>
        {
            Assert.That(herRead, Is.EqualTo("error 103"), "her socket was aborted before the scraper's next request reached her");
            Assert.That(sent, Is.EqualTo(SocketError.ConnectionReset), "the scraper's connection was reset, so it makes a new one");
            Assert.That(sweep.Closed, Is.EqualTo(2), "her listener and her connection");
            Assert.That(System.Text.Encoding.ASCII.GetString(buffer, 0, ourRead), Is.EqualTo("oursours"), "the daemon's own connection on the port is left alone (SendTwice)");
            Assert.That(log.Lines, Has.Count.EqualTo(1));
            Assert.That(log.Lines[0], Does.StartWith("metrics: closed 1 listener, 1 connection and 0 half-open (of uid 65534 (nobody)) on the metrics endpoint's port 9325, towards local clients"));
        });
    }

    [TestCase(0u)]
    [TestCase(Daemon)]
    public async Task A_connection_waiting_in_her_listeners_queue_is_dropped_with_the_listener(uint daemonUid)
    {
        // She lets the scraper's connection complete but does not accept it until the rules are in: a socket not yet
        // accepted has no owner the kernel still knows (older kernels say root), so it cannot be chosen by its uid.
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        using var squatter = ns.StartAs(Nobody, LateAcceptScript);
        using var scraper = InNetworkNamespace.Open(ns, () => LoopbackSockets.Connected(IPEndPoint.Parse("127.0.0.1:9325")));

        var (sweep, log) = await InstallAndSweepAsync(ns, daemonUid);
        var sent = LoopbackSockets.SendTwice(scraper, "token");
        var herAccept = squatter.NextLine(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(herAccept, Is.EqualTo("error 22"), "her listener was closed under her (EINVAL), its queue with it");
            Assert.That(sent, Is.AnyOf(SocketError.ConnectionReset, SocketError.ConnectionAborted), "the scraper's connection was closed");
            Assert.That(log.Lines, Has.Some.StartWith("metrics: closed 1 listener, ").And.Contains("of uid 65534 (nobody)"), string.Join("\n", log.Lines));
        });
    }

    [Test]
    public async Task An_orphaned_socket_with_her_answer_still_unsent_is_closed()
    {
        // She accepts, writes more than the scraper reads, and closes: the kernel keeps the connection to deliver the rest,
        // from a socket with no owner, which the rules' user match cannot see.
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        using var squatter = ns.StartAs(Nobody, OrphanScript);
        using var scraper = InNetworkNamespace.Open(ns, () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
            socket.Connect(IPEndPoint.Parse("127.0.0.1:9325"));
            return socket;
        });
        Assert.That(squatter.NextLine(TimeSpan.FromSeconds(10)), Is.EqualTo("closed"), "she wrote and closed");
        var orphans = InNetworkNamespace.Open(ns, () => Orphans());

        var (sweep, log) = await InstallAndSweepAsync(ns, Daemon);
        var left = InNetworkNamespace.Open(ns, () => Orphans());

        Assert.Multiple(() =>
        {
            Assert.That(orphans, Has.Count.EqualTo(1), "her orphan, still sending");
            Assert.That(left, Is.Empty, "closed by the sweep");
            Assert.That(log.Lines, Has.Some.StartWith("metrics: closed 1 listener, 1 connection and 0 half-open (of uid 65534 (nobody))"), string.Join("\n", log.Lines));
            Assert.That(LoopbackSockets.SendTwice(scraper, "more"), Is.EqualTo(SocketError.ConnectionAborted), "closed through its peer, the scraper's socket, whose reset closes the orphan on every kernel");
        });
    }

    [Test]
    public void Her_listeners_first_then_every_connection_to_a_local_peer_not_provably_the_daemons_one_without_an_inode_through_its_peer()
    {
        var sockets = new[]
        {
            Socket(TcpState.Established, "127.0.0.1:9325", "127.0.0.1:40000", Nobody, 7),
            Socket(TcpState.Listen, "[::1]:9325", "[::]:0", Nobody, 2),
            Socket(TcpState.Listen, "10.0.0.5:9325", "0.0.0.0:0", Nobody, 3),
            Socket(TcpState.Listen, "127.0.0.1:9325", "0.0.0.0:0", Daemon, 4),
            Socket(TcpState.Established, "127.0.0.1:9325", "127.0.0.1:40003", Daemon, 8),
            Socket(TcpState.Established, "127.0.0.1:9325", "127.0.0.1:40006", 0, 0),
            Socket(TcpState.FinWait1, "[::1]:9325", "[::1]:40008", 0, 0),
            Socket(TcpState.CloseWait, "[::1]:9325", "[::1]:40009", 0, 0),
            Socket(TcpState.FinWait1, "127.0.0.2:9325", "127.0.0.2:40010", 0, 0),
            Socket(TcpState.SynReceived, "[::1]:9325", "[::1]:40004", 0, 0),
            Socket(TcpState.FinWait2, "127.0.0.1:9325", "127.0.0.1:40007", 0, 0) with { Timer = 3 },
            Socket(TcpState.Established, "[::ffff:10.0.0.5]:9325", "[::ffff:10.0.0.5]:40002", Nobody, 9),
            Socket(TcpState.Established, "10.0.0.5:9325", "192.0.2.7:443", Nobody, 10),
            Socket(TcpState.FinWait1, "127.0.0.1:9325", "127.0.0.1:40001", 0, 11),
        };
        var peers = new[]
        {
            Socket(TcpState.Established, "127.0.0.1:40006", "127.0.0.1:9325", 0, 20),
            Socket(TcpState.Established, "[::1]:40008", "[::1]:9325", 1010, 21),
            Socket(TcpState.Established, "127.0.0.2:40010", "127.0.0.2:9325", 0, 22),
        };

        var chosen = MetricsPortTargets.Find(sockets, peers, Daemon);

        Assert.Multiple(() =>
        {
            Assert.That(chosen.Select(c => (c.Socket.State, c.Socket.Remote.Port, c.Owner, c.Abort.Inode)), Is.EqualTo(new (TcpState, int, uint?, ulong)[]
            {
                (TcpState.Listen, 0, Nobody, 2),
                (TcpState.Established, 40000, Nobody, 7),
                (TcpState.FinWait1, 40008, Nobody, 21),
                (TcpState.FinWait1, 40010, null, 22),
                (TcpState.SynReceived, 40004, Nobody, 0),
                (TcpState.Established, 40002, Nobody, 9),
                (TcpState.FinWait1, 40001, 0u, 11),
            }), "her listener on ::1 first (not the one on another host's address, not the daemon's); then her connection; her orphan on ::1 through its peer; an orphan no listener covers through its peer (no owner known); her listener's half-open one itself; one to her own address; root's (the daemon runs as 995). Not the daemon's own, not one without an inode that came through the daemon's listener (40006), nor one whose peer is gone (40009), not a TIME_WAIT minisocket, not hers to another host");
            Assert.That(MetricsPortTargets.Describe(chosen, _ => null), Is.EqualTo("1 listener, 5 connections and 1 half-open (of uid 0 (root), uid 65534 (nobody); 1 without an owner, orphaned, half-open or not yet accepted)"));
            Assert.That(MetricsPortTargets.NeedsPeers(sockets), Is.True);
            Assert.That(MetricsPortTargets.NeedsPeers([.. sockets.Where(s => s.Inode != 0 || s.State == TcpState.SynReceived)]), Is.False, "a half-open connection is closed itself");
        });
    }

    // The table installed for a daemon of daemonUid, then one sweep in the namespace, as the watchdog has it done.
    private static async Task<(MetricsPortSweep Sweep, RecordingLogger Log)> InstallAndSweepAsync(TestNamespace ns, uint daemonUid)
    {
        await new RulesetManager(ns.Nft).InstallAsync(Netfilter.MetricsRulesTests.Metrics with { MetricsServerUid = daemonUid }, CancellationToken.None);
        var log = new RecordingLogger();
        var sweep = new MetricsPortSweep(IPEndPoint.Parse("127.0.0.1:9325"), daemonUid, log);
        InNetworkNamespace.Open(ns, () =>
        {
            sweep.Run();
            return 0;
        });
        return (sweep, log);
    }

    // The connections on the port with no inode that are not TIME_WAIT minisockets: her orphan, in this test.
    private static List<PortSocket> Orphans() =>
        [.. PortSockets.OnPort(9325, PortSockets.AllButTimeWait).Where(s => s.State != TcpState.Listen && s.Inode == 0 && !s.IsTimeWait)];

    private static PortSocket Socket(TcpState state, string local, string remote, uint uid, ulong inode) =>
        new(state, IPEndPoint.Parse(local), IPEndPoint.Parse(remote), uid, inode);
}
