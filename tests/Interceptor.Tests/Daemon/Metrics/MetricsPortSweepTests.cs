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
/// The sweep after each install of the table (MetricsPortSweep.cs): a connection a customer's socket accepted on the
/// metrics port while the table had no metrics rules is aborted by the kernel, so the scraper's next request (and token)
/// never reaches her; the daemon's own connections on the port, and her connections to other hosts, are left alone.
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

    [Test]
    public async Task A_connection_a_customer_accepted_on_the_port_before_the_rules_is_aborted_and_the_daemons_own_stays()
    {
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        using var squatter = ns.StartAs(Nobody, SquatterScript);
        using var scraper = InNetworkNamespace.Open(ns, () => Connected(IPEndPoint.Parse("127.0.0.1:9325")));
        Assert.That(squatter.NextLine(TimeSpan.FromSeconds(5)), Is.EqualTo("accepted"), "no rules yet: the scraper's connection reaches her");

        // Root stands for the daemon here (the spec's MetricsServerUid is 0): its connection on [::1]:9325 is its own.
        using var ours = InNetworkNamespace.Open(ns, () => Listening(IPEndPoint.Parse("[::1]:9325")));
        using var ourClient = InNetworkNamespace.Open(ns, () => Connected(IPEndPoint.Parse("[::1]:9325")));
        using var ourServer = ours.Accept();

        await new RulesetManager(ns.Nft).InstallAsync(Netfilter.MetricsRulesTests.Metrics, CancellationToken.None);
        var log = new RecordingLogger();
        var sweep = new MetricsPortSweep(IPEndPoint.Parse("127.0.0.1:9325"), 0, log);
        InNetworkNamespace.Open(ns, () =>
        {
            sweep.Run();
            return 0;
        });

        var sent = Send(scraper, "token");
        var herRead = squatter.NextLine(TimeSpan.FromSeconds(5));
        Send(ourClient, "ours");
        var buffer = new byte[16];
        ourServer.ReceiveTimeout = 2000;
        var ourRead = ourServer.Receive(buffer);

        Assert.Multiple(() =>
        {
            Assert.That(herRead, Is.EqualTo("error 103"), "her socket was aborted before the scraper's next request reached her");
            Assert.That(sent, Is.EqualTo(SocketError.ConnectionReset), "the scraper's connection was reset, so it makes a new one");
            Assert.That(sweep.Closed, Is.EqualTo(1), "her connection only");
            Assert.That(System.Text.Encoding.ASCII.GetString(buffer, 0, ourRead), Is.EqualTo("oursours"), "the daemon's own connection on the port is left alone (Send writes twice)");
            Assert.That(log.Lines, Has.Count.EqualTo(1));
            Assert.That(log.Lines[0], Does.StartWith("metrics: closed 1 connections on the metrics endpoint's port 9325 that uid 65534 (nobody) held towards local clients"));
        });
    }

    [Test]
    public void Only_another_uids_connections_to_local_peers_and_her_listeners_half_open_ones_are_chosen()
    {
        var sockets = new[]
        {
            Socket(TcpState.Listen, "[::1]:9325", "[::]:0", Nobody),
            Socket(TcpState.Listen, "127.0.0.1:9325", "0.0.0.0:0", Daemon),
            Socket(TcpState.Established, "127.0.0.1:9325", "127.0.0.1:40000", Nobody),
            Socket(TcpState.FinWait1, "[::1]:9325", "[::1]:40001", 0),
            Socket(TcpState.Established, "[::ffff:10.0.0.5]:9325", "[::ffff:10.0.0.5]:40002", Nobody),
            Socket(TcpState.Established, "10.0.0.5:9325", "192.0.2.7:443", Nobody),
            Socket(TcpState.Established, "127.0.0.1:9325", "127.0.0.1:40003", Daemon),
            Socket(TcpState.NewSynReceived, "[::1]:9325", "[::1]:40004", 0),
            Socket(TcpState.NewSynReceived, "127.0.0.1:9325", "127.0.0.1:40005", 0),
        };

        var chosen = MetricsPortSweep.Foreign(sockets, Daemon);

        Assert.That(chosen.Select(c => (c.Socket.Remote.Port, c.Owner)), Is.EqualTo(new[]
        {
            (40000, Nobody),
            (40001, 0u),
            (40002, Nobody),
            (40004, Nobody),
        }), "her connection from loopback, root's (the daemon runs as 995, so root is another uid here), one to her own address, and her listener's half-open one; not her connection to another host, not the daemon's, not the daemon's listener's half-open one");
    }

    [Test]
    public void A_socket_gone_since_the_dump_is_not_mistaken_for_another_on_the_same_ends()
    {
        using var server = Listening(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)server.LocalEndPoint!).Port;
        using var client = Connected((IPEndPoint)server.LocalEndPoint!);
        using var accepted = server.Accept();
        var listed = PortSockets.OnPort(port, PortSockets.AllButTimeWait);
        var connection = listed.Single(s => s.State == TcpState.Established);

        var stale = connection with { Cookie = connection.Cookie + 1 };

        Assert.Multiple(() =>
        {
            Assert.That(listed.Select(s => s.State), Is.EquivalentTo(new[] { TcpState.Listen, TcpState.Established }), string.Join("; ", listed));
            Assert.That(connection.Inode, Is.EqualTo(ListeningSockets.InodeOf(accepted)));
            Assert.That(PortSockets.Destroy([stale])[0], Is.Not.Zero, "another cookie names no socket");
            Assert.That(Send(client, "still"), Is.EqualTo(SocketError.Success), "the connection is untouched");
            Assert.That(PortSockets.Destroy([connection with { State = TcpState.Listen }])[0], Is.Zero, "the cookie, not the state, names it");
            Assert.That(Send(client, "gone"), Is.EqualTo(SocketError.ConnectionReset));
        });
    }

    private static PortSocket Socket(TcpState state, string local, string remote, uint uid) =>
        new(state, IPEndPoint.Parse(local), IPEndPoint.Parse(remote), uid, 1);

    private static Socket Listening(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(endpoint);
        socket.Listen();
        return socket;
    }

    private static Socket Connected(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(endpoint);
        return socket;
    }

    // What sending gives once the kernel has had the time to deliver a reset on loopback: a reset socket fails at once.
    private static SocketError Send(Socket socket, string text)
    {
        try
        {
            socket.Send(System.Text.Encoding.ASCII.GetBytes(text));
            Thread.Sleep(100);
            socket.Send(System.Text.Encoding.ASCII.GetBytes(text));
            return SocketError.Success;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
