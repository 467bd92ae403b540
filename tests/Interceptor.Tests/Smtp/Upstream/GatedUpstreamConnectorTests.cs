using System.Net;
using Interceptor.Smtp.Upstream;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>Each upstream connection holds one slot of the gate from before its connect until it is closed, exactly once.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class GatedUpstreamConnectorTests
{
    private static readonly IPEndPoint Mx = new(IPAddress.Parse("192.0.2.25"), 25);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    [Test]
    public async Task The_slot_is_held_while_open_and_given_back_once_when_disposed_twice()
    {
        using var gate = new UpstreamDescriptorGate(2);
        var inner = new FakeConnector();
        var connector = new GatedUpstreamConnector(inner, gate);

        var transport = await connector.ConnectAsync(Mx, Timeout, CancellationToken.None);
        Assert.That(gate.Open, Is.EqualTo(1));
        await transport.DisposeAsync();
        await transport.DisposeAsync();
        Assert.Multiple(() =>
        {
            Assert.That(gate.Open, Is.Zero, "given back once, not twice (SemaphoreSlim would throw past its capacity)");
            Assert.That(inner.Transports[0].Disposals, Is.EqualTo(2), "the inner transport is disposed as asked");
        });
    }

    [Test]
    public async Task An_aborted_transport_gives_its_slot_back_once_even_when_disposed_afterwards()
    {
        using var gate = new UpstreamDescriptorGate(1);
        var inner = new FakeConnector();
        var connector = new GatedUpstreamConnector(inner, gate);

        var transport = await connector.ConnectAsync(Mx, Timeout, CancellationToken.None);
        transport.Abort();
        Assert.That(gate.Open, Is.Zero);
        await transport.DisposeAsync();
        Assert.Multiple(() =>
        {
            Assert.That(gate.Open, Is.Zero);
            Assert.That(inner.Transports[0].Aborted, Is.True);
        });

        // The slot is really free: the next connection opens at once.
        await using var next = await connector.ConnectAsync(Mx, Timeout, CancellationToken.None);
        Assert.That(gate.Waits, Is.Zero);
    }

    [Test]
    public async Task A_connection_closed_after_the_listener_disposed_the_gate_closes_without_throwing()
    {
        // At shutdown a session can outlive the drain (a client not reading its 421) and close its upstream only after
        // the listener disposed the gate: closing must not throw out of the session's cleanup.
        var gate = new UpstreamDescriptorGate(1);
        var inner = new FakeConnector();
        var transport = await new GatedUpstreamConnector(inner, gate).ConnectAsync(Mx, Timeout, CancellationToken.None);
        gate.Dispose();

        Assert.DoesNotThrowAsync(async () => await transport.DisposeAsync());
        Assert.That(inner.Transports[0].Disposals, Is.EqualTo(1));
    }

    [Test]
    public async Task A_failed_connect_gives_its_slot_back_and_its_error_passes_through()
    {
        using var gate = new UpstreamDescriptorGate(1);
        var connector = new GatedUpstreamConnector(new FakeConnector { Failure = new UpstreamUnavailableException("connect to 192.0.2.25:25 failed: connection refused") }, gate);

        var e = Assert.ThrowsAsync<UpstreamUnavailableException>(() => connector.ConnectAsync(Mx, Timeout, CancellationToken.None));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("connection refused"));
            Assert.That(gate.Open, Is.Zero);
        });
    }

    [Test]
    public async Task A_timed_out_connect_gives_its_slot_back()
    {
        using var gate = new UpstreamDescriptorGate(1);
        var connector = new GatedUpstreamConnector(new FakeConnector { Hang = true }, gate);

        Assert.ThrowsAsync<UpstreamUnavailableException>(() => connector.ConnectAsync(Mx, TimeSpan.FromMilliseconds(100), CancellationToken.None));
        Assert.That(gate.Open, Is.Zero);
        await Task.CompletedTask;
    }

    [Test]
    public async Task A_full_gate_refuses_without_connecting()
    {
        using var gate = new UpstreamDescriptorGate(1);
        var inner = new FakeConnector();
        var connector = new GatedUpstreamConnector(inner, gate);
        await using var held = await connector.ConnectAsync(Mx, Timeout, CancellationToken.None);

        var e = Assert.ThrowsAsync<UpstreamDescriptorsExhaustedException>(() => connector.ConnectAsync(Mx, TimeSpan.FromMilliseconds(200), CancellationToken.None));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.StartWith("no descriptor free for another upstream connection (1 open"));
            Assert.That(inner.Transports, Has.Count.EqualTo(1), "the refused one never reached the network");
            Assert.That(gate.Open, Is.EqualTo(1));
        });
    }

    /// <summary>Hands out in-memory transports, or fails or hangs (until the connect timeout) as told.</summary>
    private sealed class FakeConnector : IUpstreamConnector
    {
        public Exception? Failure { get; init; }

        public bool Hang { get; init; }

        public List<FakeTransport> Transports { get; } = [];

        public async Task<IUpstreamTransport> ConnectAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
        {
            if (Hang)
            {
                await Task.Delay(timeout, cancellationToken);
                throw new UpstreamUnavailableException($"connect to {endpoint} timed out after {timeout.TotalSeconds:0} s");
            }

            if (Failure is not null)
            {
                throw Failure;
            }

            var transport = new FakeTransport();
            Transports.Add(transport);
            return transport;
        }
    }

    private sealed class FakeTransport : IUpstreamTransport
    {
        public Stream Stream { get; } = new MemoryStream();

        public int Disposals { get; private set; }

        public bool Aborted { get; private set; }

        public bool HasUnaskedInput() => false;

        public void Abort() => Aborted = true;

        public ValueTask DisposeAsync()
        {
            Disposals++;
            return ValueTask.CompletedTask;
        }
    }
}
