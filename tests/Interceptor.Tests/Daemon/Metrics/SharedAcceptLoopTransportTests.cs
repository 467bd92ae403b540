using System.Net;
using System.Net.Sockets;
using Interceptor.Daemon.Metrics;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>Kestrel's connections for /metrics come from the daemon's own accept loop, admitted under the cap first.</summary>
[TestFixture]
public sealed class SharedAcceptLoopTransportTests
{
    [Test]
    public async Task An_admitted_connection_reaches_kestrel_one_not_admitted_is_closed_at_once_and_unbinding_ends_the_accepting()
    {
        var log = new RecordingLogger();
        var admitted = 0;
        var slot = new CountedSlot();
        await using var listener = await new SharedAcceptLoopTransport(_ => Interlocked.Increment(ref admitted) == 1 ? slot : null, log)
            .BindAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var bound = (IPEndPoint)listener.EndPoint;
        Assert.That(bound.Port, Is.Not.Zero, "the port the kernel chose");

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(bound);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var connection = await listener.AcceptAsync(wait.Token);
        Assert.That(connection?.RemoteEndPoint, Is.EqualTo(client.LocalEndPoint), "the client's own connection");
        Assert.That(connection!.Items[SharedAcceptLoopTransport.SlotKey], Is.SameAs(slot), "its slot goes with it, for the endpoint to give back");
        await connection!.DisposeAsync();

        // Not admitted: closed at once, never handed to Kestrel.
        using var refused = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await refused.ConnectAsync(bound);
        Assert.That(await refused.ReceiveAsync(new byte[1], SocketFlags.None, wait.Token), Is.Zero, "closed by the transport");

        await listener.UnbindAsync();
        Assert.Multiple(async () =>
        {
            Assert.That(await listener.AcceptAsync(wait.Token), Is.Null, "nothing more once unbound");
            Assert.That(log.Errors, Is.Empty);
            Assert.That(slot.Disposed, Is.Zero, "the slot is the endpoint's to give back, when the connection ends");
        });
    }

    private sealed class CountedSlot : IDisposable
    {
        public int Disposed { get; private set; }

        public void Dispose() => Disposed++;
    }
}
