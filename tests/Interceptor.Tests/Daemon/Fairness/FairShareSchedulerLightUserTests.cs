using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using NUnit.Framework;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// Under load (a pump busy with another user's item), a light user's item (no session of its user in the scheduler, not
/// two at once nor more than <see cref="FairShareScheduler.LightStepsPerWindow"/> steps in the last
/// <see cref="FairShareScheduler.LoadWindow"/>) runs where it is posted, beside the pumps; a busier user's item is queued
/// for the turns. Every ContextFor is a session of its own. Pumps are collected by the test; the busy one runs on a pool
/// thread; the clock is moved by hand (a pump checks its slice before its first item).
/// </summary>
public class FairShareSchedulerLightUserTests
{
    private const uint X = 1001;
    private const uint Y = 1002;
    private const uint Z = 1003;

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];
    private SteppedClock _clock = new();

    [SetUp]
    public void FreshState()
    {
        // A failed test may leave its pumps behind: the next one would run them as its own (and wait for ever).
        _clock = new SteppedClock();
        _pumps.Clear();
        _faults.Clear();
    }

    [Test]
    public async Task A_light_users_item_runs_where_it_is_posted_while_a_pump_is_busy_with_another_users_work()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
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
        var clock = _clock;
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

            clock.Advance(FairShareScheduler.LoadWindow);
            await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x4")));
            Assert.That(ran, Has.Count.EqualTo(2), "x4 was queued behind x3, X's own waiting item");
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2", "x3", "x4" }));
        clock.Advance(FairShareScheduler.LoadWindow); // x3 and x4 were in the scheduler at once

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
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
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

    [Test]
    public async Task A_sessions_own_hand_off_from_inside_its_step_does_not_make_its_user_busy()
    {
        // A yield (ThreadBudget, BlockingWork) posts the session's next item from inside its running one: still one
        // session, so the user's next step still runs where posted.
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
        var ran = new List<string>();
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            var session = scheduler.ContextFor(Y);
            await Task.Run(() =>
            {
                using var holdingNothing = InlineContinuations.Allow();
                session.Post(_ =>
                {
                    ran.Add("y1");
                    session.Post(_ => ran.Add("y1 continued"), null);
                }, null);
            });
            Assert.That(ran, Is.EqualTo(new[] { "y1" }), "the hand-off is queued (posted from inside an item)");
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "y1", "y1 continued" }));
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            await Task.Run(() => PostHoldingNothing(scheduler, Y, _ => ran.Add("y2")));
            Assert.That(ran[^1], Is.EqualTo("y2"), "Y is still light: one session had work at a time");
        }

        RunPumps();
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task A_user_whose_sessions_take_turns_is_light_only_up_to_its_steps_per_window()
    {
        // Sessions served one after another on one socket thread never overlap; their rate still makes them busy.
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
        var ran = new List<string>();
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            await Task.Run(() =>
            {
                for (var i = 0; i < FairShareScheduler.LightStepsPerWindow + 1; i++)
                {
                    PostHoldingNothing(scheduler, X, _ => ran.Add("x"));
                }
            });
            Assert.That(ran, Has.Count.EqualTo(FairShareScheduler.LightStepsPerWindow), "the step past the window's share was queued");
        }

        RunPumps();
        Assert.That(ran, Has.Count.EqualTo(FairShareScheduler.LightStepsPerWindow + 1));
        _clock.Advance(FairShareScheduler.LoadWindow);
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x")));
            Assert.That(ran, Has.Count.EqualTo(FairShareScheduler.LightStepsPerWindow + 2), "a window later, light again");
        }

        RunPumps();
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task Posted_by_a_thread_that_keeps_one_a_light_users_item_under_load_runs_there_when_its_own_work_is_done()
    {
        // The store's writer settling a batch (InlineContinuations.KeepOne): not in the middle of the batch, not on a pump
        // busy with another user's work, but on the writer once every write of the batch is answered.
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
        var ran = new List<string>();
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            var (keptBeforeRun, ranOnKeeper, queuedMeanwhile) = await RunOnDedicatedThread(() =>
            {
                var thread = Environment.CurrentManagedThreadId;
                int? ranOn = null;
                using var keep = InlineContinuations.KeepOne();
                scheduler.ContextFor(Y).Post(_ =>
                {
                    ranOn = Environment.CurrentManagedThreadId;
                    ran.Add("y1");
                }, null);
                var kept = ran.Count == 0;
                var queued = scheduler.Queued + _pumps.Count;
                InlineContinuations.RunKept();
                return (kept, ranOn == thread, queued);
            });

            Assert.That(keptBeforeRun, Is.True, "kept until the thread's own work was done");
            Assert.That(queuedMeanwhile, Is.Zero, "neither queued nor given a pump");
            Assert.That(ranOnKeeper, Is.True);
            Assert.That(ran, Is.EqualTo(new[] { "y1" }));

            // One a window per user: a light customer's steps cannot take the writer a slice at a time, batch after batch.
            Assert.That(await PostKeepingOne(scheduler, Y, "y2", ran), Is.False, "the window's kept step was y1");
            Assert.That(await PostKeepingOne(scheduler, X, "x1", ran), Is.True, "another user's is kept");
            RunPumps();
            Assert.That(ran, Is.EqualTo(new[] { "y1", "x1", "y2" }), "y2 in its turn");
            _clock.Advance(FairShareScheduler.LoadWindow);
            Assert.That(await PostKeepingOne(scheduler, Y, "y3", ran), Is.True, "a window later, and Y's count is back to none");
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "y1", "x1", "y2", "y3" }));
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task A_kept_step_that_overran_keeps_its_users_steps_off_the_keeper_for_the_penalty()
    {
        // A path no slice counts (a long regex, a blocking file call) holds the writer: after one such step the user's
        // steps are not kept for UserLoad.KeptPenalty, windows or not; others' still are.
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
        var ran = new List<string>();
        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            Assert.That(await PostKeepingOne(scheduler, Y, "y1", ran, took: UserLoad.KeptOverrun + TimeSpan.FromMilliseconds(1)), Is.True);
            _clock.Advance(FairShareScheduler.LoadWindow);
            Assert.That(await PostKeepingOne(scheduler, Y, "y2", ran), Is.False, "a window later, but y1 overran");
            Assert.That(await PostKeepingOne(scheduler, X, "x1", ran), Is.True, "another user's is kept");
            RunPumps();
            _clock.Advance(UserLoad.KeptPenalty);
            Assert.That(await PostKeepingOne(scheduler, Y, "y3", ran), Is.True, "kept again after the penalty");

            // A step within the bound leaves only the window's count.
            _clock.Advance(FairShareScheduler.LoadWindow);
            Assert.That(await PostKeepingOne(scheduler, X, "x2", ran, took: UserLoad.KeptOverrun), Is.True);
            _clock.Advance(FairShareScheduler.LoadWindow);
            Assert.That(await PostKeepingOne(scheduler, X, "x3", ran), Is.True, "x2 took no more than the bound");
        }

        RunPumps();
        Assert.That(ran, Is.EquivalentTo(new[] { "y1", "y2", "x1", "y3", "x2", "x3" }));
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task Posted_by_a_thread_that_keeps_one_a_busy_users_item_is_queued_as_before_while_nothing_runs_or_under_load()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue, _clock);
        var ran = new List<string>();
        PostFromDedicatedThread(scheduler, X, "x1", ran);
        PostFromDedicatedThread(scheduler, X, "x2", ran);
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2" }), "X had two items at once: busy for a window");

        // Nothing runs now: the item would take the scheduler's slot on the keeping thread; it waits for a pump instead.
        Assert.That(await PostKeepingOne(scheduler, X, "x3", ran), Is.False);
        Assert.That(ran, Has.Count.EqualTo(2));
        RunPumps();
        Assert.That(ran[^1], Is.EqualTo("x3"));

        await using (var busy = BusyPump.Start(scheduler, Z, _pumps))
        {
            Assert.That(await PostKeepingOne(scheduler, X, "x4", ran), Is.False, "under load: its turn");
            Assert.That(await PostKeepingOne(scheduler, Y, "y1", ran), Is.True, "a light user's is kept");
        }

        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2", "x3", "y1", "x4" }));
        Assert.That(_faults, Is.Empty);
    }

    // took: how long the step runs on the test's clock.
    private Task<bool> PostKeepingOne(FairShareScheduler scheduler, uint uid, string name, List<string> ran, TimeSpan took = default) =>
        RunOnDedicatedThread(() =>
        {
            using var keep = InlineContinuations.KeepOne();
            scheduler.ContextFor(uid).Post(_ =>
            {
                _clock.Advance(took);
                ran.Add(name);
            }, null);
            return InlineContinuations.RunKept();
        });

    private static Task<T> RunOnDedicatedThread<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                done.SetResult(work());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        thread.Start();
        return done.Task.WaitAsync(TimeSpan.FromSeconds(20));
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
            if (!running.Wait(TimeSpan.FromSeconds(10)))
            {
                throw new TimeoutException("the busy pump never ran its item");
            }

            return busy;
        }

        public async ValueTask DisposeAsync()
        {
            _release.Set();
            await _pumping;
            _release.Dispose();
        }
    }
}
