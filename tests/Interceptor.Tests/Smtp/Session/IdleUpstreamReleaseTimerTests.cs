using System.Net;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// <see cref="IdleUpstreamRelease"/> against its timer's late callbacks: a timer callback already queued when the timer
/// is re-aimed still runs (Timer.Change does not recall it), so a callback from an earlier wait can run during a wait
/// that began a moment ago. The release must go by how long the client has been silent, not by any callback.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class IdleUpstreamReleaseTimerTests
{
    private static readonly TimeSpan ReleaseAfter = TimeSpan.FromSeconds(5);

    [Test]
    public async Task A_late_callback_from_an_earlier_wait_does_not_release_a_client_silent_for_less_than_the_release_time()
    {
        await using var world = await World.StartAsync();
        var release = world.Release;

        // First wait: the client answers just before the release time; the timer's callback was already queued.
        release.Arm();
        world.Clock.Advance(ReleaseAfter - TimeSpan.FromMilliseconds(10));
        await release.DisarmAsync();

        // Next wait begins at once; the callback queued by the first one runs only now.
        release.Arm();
        world.Clock.Timer!.RunCallback();
        await release.DisarmAsync();

        Assert.That(world.Lease.HoldsIdleSession, Is.True, "silent for no time at all: the upstream session is still held");
        Assert.That(release.Released, Is.Zero);
    }

    [Test]
    public async Task A_client_silent_for_the_release_time_gives_its_upstream_back()
    {
        await using var world = await World.StartAsync();
        var release = world.Release;

        release.Arm();
        world.Clock.Advance(ReleaseAfter);
        world.Clock.Timer!.RunCallback();
        await release.DisarmAsync();

        Assert.That(world.Lease.HoldsIdleSession, Is.False, "given back after the release time");
        Assert.That(release.Released, Is.EqualTo(1));
    }

    [Test]
    public async Task A_callback_a_little_early_is_aimed_again_at_the_rest_of_the_release_time()
    {
        await using var world = await World.StartAsync();
        var release = world.Release;

        // Timers tick more coarsely than the clock: the callback may come a few milliseconds before the due time.
        release.Arm();
        world.Clock.Advance(ReleaseAfter - TimeSpan.FromMilliseconds(3));
        world.Clock.Timer!.RunCallback();
        Assert.That(world.Lease.HoldsIdleSession, Is.True, "not yet silent for the release time");
        Assert.That(world.Clock.Timer.DueTime, Is.EqualTo(TimeSpan.FromMilliseconds(3)), "aimed again at what is left");

        world.Clock.Advance(TimeSpan.FromMilliseconds(3));
        world.Clock.Timer.RunCallback();
        await release.DisarmAsync();
        Assert.That(world.Lease.HoldsIdleSession, Is.False);
    }

    /// <summary>A lease holding a session with a scripted upstream, and the release on a clock the test moves.</summary>
    private sealed class World : IAsyncDisposable
    {
        private readonly ScriptedUpstream _upstream;
        private readonly UpstreamConnectionCache _cache;

        private World(ScriptedUpstream upstream, UpstreamConnectionCache cache, UpstreamLease lease)
        {
            _upstream = upstream;
            _cache = cache;
            Lease = lease;
            var origin = new ConnectionOrigin(RelayHarness.Uid, RelayHarness.User, new IPEndPoint(IPAddress.Loopback, 40000), upstream.EndPoint);
            Release = new IdleUpstreamRelease(lease, ReleaseAfter, Clock, origin, NullLogger.Instance);
        }

        public StepClock Clock { get; } = new();

        public UpstreamLease Lease { get; }

        public IdleUpstreamRelease Release { get; }

        public static async Task<World> StartAsync()
        {
            var upstream = new ScriptedUpstream();
            var cache = new UpstreamConnectionCache(UpstreamSettings.From(RelayHarness.Options.Relay));
            var lease = new UpstreamLease(cache.RouteTo(upstream.EndPoint));
            Assert.That(await lease.ConnectAsync(CancellationToken.None), Is.Null, "the scripted upstream greets");
            Assert.That(lease.HoldsIdleSession, Is.True);
            return new World(upstream, cache, lease);
        }

        public async ValueTask DisposeAsync()
        {
            await Release.DisposeAsync();
            await Lease.DisposeAsync();
            await _cache.DisposeAsync();
            await _upstream.DisposeAsync();
        }
    }

    /// <summary>A clock moved by hand whose one timer's callback the test runs, as the thread pool would, whenever it likes.</summary>
    private sealed class StepClock : TimeProvider
    {
        private long _ticks;

        public StepTimer? Timer { get; private set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            Timer = new StepTimer(callback, state, dueTime);
    }

    private sealed class StepTimer(TimerCallback callback, object? state, TimeSpan dueTime) : ITimer
    {
        public TimeSpan DueTime { get; private set; } = dueTime;

        public void RunCallback() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            DueTime = dueTime;
            return true;
        }

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
