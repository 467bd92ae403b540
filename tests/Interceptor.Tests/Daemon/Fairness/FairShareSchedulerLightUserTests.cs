using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// Under load (a pump busy with another user's item), a light user's item (nothing else of its user in the scheduler,
/// no pile-up in the last <see cref="FairShareScheduler.CrowdedFor"/>) runs where it is posted, beside the pumps; a
/// crowded user's item is queued for the turns. Pumps are collected by the test; the busy one runs on a pool thread.
/// </summary>
public class FairShareSchedulerLightUserTests
{
    private const uint X = 1001;
    private const uint Y = 1002;
    private const uint Z = 1003;

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];

    [Test]
    public async Task A_light_users_item_runs_where_it_is_posted_while_a_pump_is_busy_with_another_users_work()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            PostFromDedicatedThread(scheduler, X, "x1", ran);
            var onPostingThread = await Task.Run(() =>
            {
                var thread = Environment.CurrentManagedThreadId;
                int? ranOn = null;
                PostHoldingNothing(scheduler, Y, _ =>
                {
                    ranOn = Environment.CurrentManagedThreadId;
                    ran.Add("y1");
                });
                return ranOn == thread;
            });

            Assert.That(onPostingThread, Is.True, "y1 ran before Post returned, on the posting thread");
            Assert.That(ran, Is.EqualTo(new[] { "y1" }), "ahead of x1, which waits for a pump");
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "y1", "x1" }));
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task A_user_that_had_two_items_at_once_is_queued_until_its_crowded_time_has_passed()
    {
        var clock = new SteppedClock();
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, clock);
        var ran = new List<string>();
        PostFromDedicatedThread(scheduler, X, "x1", ran);
        PostFromDedicatedThread(scheduler, X, "x2", ran);
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2" }));

        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x3")));
            Assert.That(ran, Has.Count.EqualTo(2), "x3 was queued: X piled up a moment ago");

            clock.Advance(FairShareScheduler.CrowdedFor);
            await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x4")));
            Assert.That(ran, Has.Count.EqualTo(2), "x4 was queued behind x3, X's own waiting item");
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2", "x3", "x4" }));
        clock.Advance(FairShareScheduler.CrowdedFor); // x3 and x4 were in the scheduler at once

        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x5")));
            Assert.That(ran[^1], Is.EqualTo("x5"), "crowded time over and nothing of X waiting: light again");
        }

        RunPumps();
    }

    [Test]
    public async Task A_second_item_of_a_user_whose_first_runs_beside_the_pumps_is_queued()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            using var running = new ManualResetEventSlim();
            using var release = new ManualResetEventSlim();
            var first = Task.Run(() => PostHoldingNothing(scheduler, Y, _ =>
            {
                running.Set();
                release.Wait();
                ran.Add("y1");
            }));
            Assert.That(running.Wait(TimeSpan.FromSeconds(10)), Is.True, "y1 runs where posted, beside the busy pump");

            await Task.Run(() => PostHoldingNothing(scheduler, Y, _ => ran.Add("y2")));
            Assert.That(ran, Is.Empty, "y2 was queued: Y already had an item running");
            release.Set();
            await first;
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "y1", "y2" }));
        Assert.That(_faults, Is.Empty);
    }

    private static void PostHoldingNothing(FairShareScheduler scheduler, uint uid, SendOrPostCallback work)
    {
        using var holdingNothing = InlineContinuations.Allow();
        scheduler.ContextFor(uid).Post(work, null);
    }

    private static void PostFromDedicatedThread(FairShareScheduler scheduler, uint uid, string name, List<string> ran)
    {
        var thread = new Thread(() => scheduler.ContextFor(uid).Post(_ => ran.Add(name), null));
        thread.Start();
        thread.Join();
    }

    private void RunPumps()
    {
        while (_pumps.TryDequeue(out var pump))
        {
            pump();
        }
    }

    /// <summary>A pump running one item of <c>uid</c> that blocks until disposed: the scheduler is under load meanwhile.</summary>
    private sealed class BusyPump : IAsyncDisposable
    {
        private readonly ManualResetEventSlim _release = new();
        private Task _pumping = Task.CompletedTask;

        public static BusyPump Start(FairShareScheduler scheduler, uint uid, Queue<Action> pumps)
        {
            var busy = new BusyPump();
            using var running = new ManualResetEventSlim();
            var thread = new Thread(() => scheduler.ContextFor(uid).Post(_ =>
            {
                running.Set();
                busy._release.Wait();
            }, null));
            thread.Start();
            thread.Join();
            var pump = pumps.Dequeue();
            busy._pumping = Task.Run(pump);
            running.Wait();
            return busy;
        }

        public async ValueTask DisposeAsync()
        {
            _release.Set();
            await _pumping;
            _release.Dispose();
        }
    }

    private sealed class SteppedClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
