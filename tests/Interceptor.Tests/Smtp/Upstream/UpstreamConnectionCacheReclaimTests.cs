using Interceptor.Core.Options;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.Smtp.Session;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>
/// The reuse cache under the descriptor gate: idle sessions are what gives way when upstream connections run short
/// (<see cref="UpstreamConnectionCache.TryCloseOneIdle"/>, oldest first), over loopback against scripted upstreams.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class UpstreamConnectionCacheReclaimTests
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(5);

    private static UpstreamSettings Settings => UpstreamSettings.From(RelayHarness.Options.Relay with
    {
        ReuseConnections = true,
        ReuseIdleTime = TimeSpan.FromSeconds(60),
    });

    /// <summary>Opens a session to <paramref name="upstream"/> and gives it back: it waits idle in the cache.</summary>
    private static async Task LeaveIdleAsync(UpstreamConnectionCache cache, ScriptedUpstream upstream)
    {
        var handOut = await cache.TakeAsync(upstream.EndPoint, fresh: false, CancellationToken.None);
        Assert.That(handOut.Connection, Is.Not.Null, handOut.Refusal?.ToString());
        await cache.ReleaseAsync(handOut.Connection!);
    }

    [Test]
    public async Task TryCloseOneIdle_ends_the_longest_idle_session_whatever_its_destination_with_quit()
    {
        await using var cache = new UpstreamConnectionCache(Settings);
        await using var first = new ScriptedUpstream();
        await using var second = new ScriptedUpstream();
        await LeaveIdleAsync(cache, first);
        await Task.Delay(50);
        await LeaveIdleAsync(cache, second);
        await Task.Delay(50);
        await LeaveIdleAsync(cache, first);
        Assert.That(cache.IdleCount, Is.EqualTo(2), "the third take reused the first session");
        await using var third = new ScriptedUpstream();
        await LeaveIdleAsync(cache, third);

        Assert.That(cache.TryCloseOneIdle(), Is.True);
        Assert.Multiple(async () =>
        {
            Assert.That(await Wait.ForAsync(second.Sessions[0].Ended, "the oldest idle session to end"), Is.EqualTo(UpstreamEnd.Quit));
            Assert.That(first.Sessions[0].HasEnded, Is.False, "used again after the second's, so younger");
            Assert.That(third.Sessions[0].HasEnded, Is.False);
            Assert.That(cache.IdleCount, Is.EqualTo(2));
        });

        Assert.That(cache.TryCloseOneIdle(), Is.True);
        Assert.That(await Wait.ForAsync(first.Sessions[0].Ended, "the next oldest to end"), Is.EqualTo(UpstreamEnd.Quit));
        Assert.That(cache.TryCloseOneIdle(), Is.True);
        Assert.That(cache.TryCloseOneIdle(), Is.False, "nothing idle is left");
        Assert.That(cache.IdleCount, Is.Zero);
    }

    [Test]
    public async Task With_the_gate_full_a_new_connection_ends_an_idle_one_to_another_destination_and_takes_its_slot()
    {
        await using var world = new GatedWorld();
        var (gate, cache, first, second) = (world.Gate, world.Cache, world.First, world.Second);
        await LeaveIdleAsync(cache, first);
        Assert.That(gate.Open, Is.EqualTo(1), "an idle session holds its slot");

        var handOut = await cache.TakeAsync(second.EndPoint, fresh: false, CancellationToken.None).WaitAsync(Connect);
        Assert.Multiple(async () =>
        {
            Assert.That(handOut.Connection, Is.Not.Null, handOut.Refusal?.ToString());
            Assert.That(await Wait.ForAsync(first.Sessions[0].Ended, "the idle session to make room"), Is.EqualTo(UpstreamEnd.Quit));
            Assert.That(second.Sessions, Has.Count.EqualTo(1));
            Assert.That(gate.Open, Is.EqualTo(1), "never more than the cap");
            Assert.That(gate.Waits, Is.EqualTo(1));
            Assert.That(cache.IdleCount, Is.Zero);
        });
        await handOut.Connection!.DisposeAsync();
        Assert.That(gate.Open, Is.Zero);
    }

    [Test]
    public async Task A_session_given_back_while_an_opener_waits_is_closed_for_it_not_kept()
    {
        await using var world = new GatedWorld();
        var (gate, cache, first, second) = (world.Gate, world.Cache, world.First, world.Second);
        var held = (await cache.TakeAsync(first.EndPoint, fresh: false, CancellationToken.None)).Connection!;

        var waiting = cache.TakeAsync(second.EndPoint, fresh: false, CancellationToken.None);
        await Wait.UntilAsync(() => gate.HasWaiters, "the second opener to wait for a slot");
        await cache.ReleaseAsync(held);
        Assert.That(cache.IdleCount, Is.Zero, "not kept: the waiter needs its descriptor");

        var handOut = await Wait.ForAsync(waiting, "the waiter to open its connection");
        Assert.Multiple(async () =>
        {
            Assert.That(handOut.Connection, Is.Not.Null);
            // The release writes QUIT and closes without reading the 221; the upstream records its end afterwards, on its own task.
            Assert.That(await Wait.ForAsync(first.Sessions[0].Ended, "the given-back session to end"), Is.EqualTo(UpstreamEnd.Quit));
            Assert.That(gate.Open, Is.EqualTo(1));
        });
        await handOut.Connection!.DisposeAsync();
    }

    [Test]
    public async Task With_the_gate_full_and_nothing_idle_a_new_connection_is_refused_after_the_connect_timeout()
    {
        using var gate = new UpstreamDescriptorGate(1);
        var settings = Settings with { ConnectTimeout = TimeSpan.FromMilliseconds(300) };
        await using var cache = new UpstreamConnectionCache(settings, descriptors: gate);
        await using var upstream = new ScriptedUpstream();
        var held = (await cache.TakeAsync(upstream.EndPoint, fresh: false, CancellationToken.None)).Connection!;

        var e = Assert.ThrowsAsync<UpstreamDescriptorsExhaustedException>(() => cache.TakeAsync(upstream.EndPoint, fresh: true, CancellationToken.None));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("no descriptor free for another upstream connection (1 open"));
            Assert.That(upstream.Sessions, Has.Count.EqualTo(1), "the refused one never connected");
        });
        await held.DisposeAsync();
    }

    /// <summary>A cache opening through a gate of one slot, and two upstreams (two destinations).</summary>
    private sealed class GatedWorld : IAsyncDisposable
    {
        public GatedWorld() => Cache = new UpstreamConnectionCache(Settings, descriptors: Gate);

        public UpstreamDescriptorGate Gate { get; } = new(1);

        public UpstreamConnectionCache Cache { get; }

        public ScriptedUpstream First { get; } = new();

        public ScriptedUpstream Second { get; } = new();

        public async ValueTask DisposeAsync()
        {
            await Cache.DisposeAsync();
            await First.DisposeAsync();
            await Second.DisposeAsync();
            Gate.Dispose();
        }
    }
}
