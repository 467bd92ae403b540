using System.Net;
using System.Net.Sockets;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public class SocketOwnerLookupTests
{
    /// <summary>A connected loopback pair; the client's remote end is the listener's endpoint.</summary>
    private sealed class LoopbackConnection : IDisposable
    {
        private readonly TcpListener _listener;

        public LoopbackConnection(IPAddress address)
        {
            _listener = new TcpListener(address, 0);
            _listener.Start();
            Client = new TcpClient(address.AddressFamily);
            Client.Connect((IPEndPoint)_listener.LocalEndpoint);
            Accepted = _listener.AcceptSocket();
        }

        public TcpClient Client { get; }

        public Socket Accepted { get; }

        public IPEndPoint ClientEndPoint => (IPEndPoint)Client.Client.LocalEndPoint!;

        public IPEndPoint ListenerEndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public void Dispose()
        {
            Accepted.Dispose();
            Client.Dispose();
            _listener.Stop();
            _listener.Dispose();
        }
    }

    private static LoopbackConnection Connect(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            Assume.That(Socket.OSSupportsIPv6, "no IPv6 on this host");
        }

        try
        {
            return new LoopbackConnection(address);
        }
        catch (SocketException e) when (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            Assume.That(false, $"no IPv6 loopback: {e.Message}");
            throw;
        }
    }

    [Test]
    public void Uses_sock_diag_on_linux()
    {
        using var lookup = new SocketOwnerLookup();

        Assert.That(lookup.Method, Is.EqualTo(OwnerLookupMethod.SockDiag));
    }

    [TestCase("127.0.0.1", OwnerLookupMethod.SockDiag)]
    [TestCase("::1", OwnerLookupMethod.SockDiag)]
    [TestCase("127.0.0.1", OwnerLookupMethod.ProcNetTcp)]
    [TestCase("::1", OwnerLookupMethod.ProcNetTcp)]
    public void Finds_our_own_client_socket(string address, OwnerLookupMethod method)
    {
        using var connection = Connect(IPAddress.Parse(address));
        using var lookup = new SocketOwnerLookup(method);

        var owner = lookup.Find(connection.ClientEndPoint, connection.ListenerEndPoint);

        Assert.That(owner, Is.Not.Null);
        Assert.That(owner!.Value.Uid, Is.EqualTo(UserDatabase.EffectiveUid));
        Assert.That(owner.Value.Inode, Is.Not.Zero);
    }

    [Test]
    public void Both_methods_agree_on_the_inode()
    {
        using var connection = Connect(IPAddress.Loopback);
        using var sockDiag = new SocketOwnerLookup(OwnerLookupMethod.SockDiag);
        using var proc = new SocketOwnerLookup(OwnerLookupMethod.ProcNetTcp);

        var viaNetlink = sockDiag.Find(connection.ClientEndPoint, connection.ListenerEndPoint);
        var viaProc = proc.Find(connection.ClientEndPoint, connection.ListenerEndPoint);

        Assert.That(viaNetlink, Is.Not.Null);
        Assert.That(viaNetlink, Is.EqualTo(viaProc));
    }

    [Test]
    public void Finds_the_client_not_the_accepted_side()
    {
        // The accepted socket's own tuple (listener -> client) is a different socket; asking for
        // the client tuple must return the client's inode, which differs from the accepted one.
        using var connection = Connect(IPAddress.Loopback);
        using var lookup = new SocketOwnerLookup();

        var client = lookup.Find(connection.ClientEndPoint, connection.ListenerEndPoint);
        var accepted = lookup.Find(connection.ListenerEndPoint, connection.ClientEndPoint);

        Assert.That(client, Is.Not.Null);
        Assert.That(accepted, Is.Not.Null);
        Assert.That(client!.Value.Inode, Is.Not.EqualTo(accepted!.Value.Inode));
    }

    [TestCase(OwnerLookupMethod.SockDiag)]
    [TestCase(OwnerLookupMethod.ProcNetTcp)]
    public void Unknown_tuple_gives_null(OwnerLookupMethod method)
    {
        using var connection = Connect(IPAddress.Loopback);
        using var lookup = new SocketOwnerLookup(method);
        var wrongDestination = new IPEndPoint(IPAddress.Parse("127.0.0.2"), 25);

        Assert.That(lookup.Find(connection.ClientEndPoint, wrongDestination), Is.Null);
    }

    [TestCase(OwnerLookupMethod.SockDiag)]
    [TestCase(OwnerLookupMethod.ProcNetTcp)]
    public void Client_socket_in_time_wait_has_no_owner(OwnerLookupMethod method)
    {
        using var connection = Connect(IPAddress.Loopback);
        var clientEndPoint = connection.ClientEndPoint;
        var listenerEndPoint = connection.ListenerEndPoint;

        // The client closes first, so its end goes through FIN_WAIT to TIME_WAIT once the
        // accepted side closes too; the kernel then reports uid 0 and inode 0 for it.
        connection.Client.Client.Close();
        connection.Accepted.Close();
        using var lookup = new SocketOwnerLookup(method);
        using var raw = SockDiagSocket.Open(TimeSpan.FromSeconds(1));
        SockDiagSocketInfo? kernelSays = null;
        for (var i = 0; i < 100 && (kernelSays = raw.Ask(clientEndPoint, listenerEndPoint).Socket) is not { State: TcpState.TimeWait }; i++)
        {
            Thread.Sleep(10);
        }

        Assert.That(kernelSays?.State, Is.EqualTo(TcpState.TimeWait), "the kernel's own answer");
        Assert.That(kernelSays!.Value.Uid, Is.Zero, "TIME_WAIT entries report uid 0");
        Assert.That(lookup.Find(clientEndPoint, listenerEndPoint), Is.Null);
    }

    [TestCase(OwnerLookupMethod.SockDiag)]
    [TestCase(OwnerLookupMethod.ProcNetTcp)]
    public void A_listener_on_the_client_port_is_never_the_owner(OwnerLookupMethod method)
    {
        // Issue 12.2: a NAT-moved client port P' that someone listens on. The exact 4-tuple (P' -> the original
        // destination) names no socket; the kernel answers with the listener, whose owner is someone else.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var lookup = new SocketOwnerLookup(method);
        using var raw = SockDiagSocket.Open(TimeSpan.FromSeconds(1));
        var client = new IPEndPoint(IPAddress.Loopback, port);
        var destination = new IPEndPoint(IPAddress.Parse("127.0.0.3"), 25);

        Assert.That(raw.Ask(client, destination).Socket?.State, Is.EqualTo(TcpState.Listen), "the kernel still answers a miss with the listener");
        Assert.That(lookup.Find(client, destination), Is.Null);
        Assert.That(lookup.Find(client, new IPEndPoint(IPAddress.Any, 0)), Is.Null, "not even for its own wildcard tuple");
    }

    [TestCase(OwnerLookupMethod.SockDiag)]
    [TestCase(OwnerLookupMethod.ProcNetTcp)]
    public void A_half_closed_client_is_still_found(OwnerLookupMethod method)
    {
        using var connection = Connect(IPAddress.Loopback);
        connection.Client.Client.Shutdown(SocketShutdown.Send);
        using var lookup = new SocketOwnerLookup(method);
        SocketOwner? owner = null;
        for (var i = 0; i < 50 && owner is null; i++)
        {
            owner = lookup.Find(connection.ClientEndPoint, connection.ListenerEndPoint);
            Thread.Sleep(owner is null ? 10 : 0);
        }

        Assert.That(owner?.Uid, Is.EqualTo(UserDatabase.EffectiveUid));
    }

    [Test]
    public void Mixed_families_give_null()
    {
        using var lookup = new SocketOwnerLookup();

        var owner = lookup.Find(new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.IPv6Loopback, 2));

        Assert.That(owner, Is.Null);
    }

    [Test]
    public async Task Concurrent_lookups_each_get_their_own_answer()
    {
        var connections = Enumerable.Range(0, 8).Select(_ => Connect(IPAddress.Loopback)).ToArray();
        try
        {
            using var lookup = new SocketOwnerLookup();
            var expected = connections
                .Select(c => lookup.Find(c.ClientEndPoint, c.ListenerEndPoint)!.Value.Inode)
                .ToArray();
            Assert.That(expected.Distinct().Count(), Is.EqualTo(connections.Length));

            var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
            {
                var mismatches = 0;
                for (var i = 0; i < 2_000; i++)
                {
                    var index = (i + worker) % connections.Length;
                    var c = connections[index];
                    var owner = lookup.Find(c.ClientEndPoint, c.ListenerEndPoint);
                    if (owner?.Inode != expected[index])
                    {
                        mismatches++;
                    }
                }

                return mismatches;
            }));

            var results = await Task.WhenAll(workers);

            Assert.That(results, Is.All.Zero);
        }
        finally
        {
            foreach (var c in connections)
            {
                c.Dispose();
            }
        }
    }

    [Test]
    public void Disposed_lookup_refuses_work()
    {
        var lookup = new SocketOwnerLookup();
        lookup.Dispose();
        lookup.Dispose();

        Assert.Throws<ObjectDisposedException>(() =>
            lookup.Find(new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 2)));
    }
}
