using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using NUnit.Framework;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// The scheduler with deterministic pumps: started pumps are collected and run by the test, one at a time, so the order
/// in which work items run is exactly the scheduler's choice.
/// </summary>
public class FairShareSchedulerTests
{
    private const uint X = 1001;
    private const uint Y = 1002;
    private const uint Z = 1003;

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];

    [Test]
    public void A_user_with_one_item_waits_behind_one_item_of_a_user_with_many_not_behind_all_of_them()
    {
        var scheduler = Deterministic(concurrency: 1);
        var ran = new List<string>();
        for (var i = 1; i <= 5; i++)
        {
            Post(scheduler, X, "x" + i, ran);
        }

        Post(scheduler, Y, "y1", ran);
        RunPumps();

        Assert.That(ran, Is.EqualTo(new[] { "x1", "y1", "x2", "x3", "x4", "x5" }));
    }

    [Test]
    public void Idle_only_while_nothing_is_queued_or_running()
    {
        // What the listener asks before it starts a connection on the accepting socket thread.
        var scheduler = Deterministic(concurrency: 1);
        var ran = new List<string>();
        Assert.That(scheduler.IsIdle, Is.True);

        Post(scheduler, X, "x1", ran);
        Assert.That(scheduler.IsIdle, Is.False, "an item waits for its pump");
        RunPumps();

        Assert.That(ran, Is.EqualTo(new[] { "x1" }));
        Assert.That(scheduler.IsIdle, Is.True);
    }

    [Test]
    public void Three_users_take_turns_one_item_each_in_the_order_they_first_queued()
    {
        var scheduler = Deterministic(concurrency: 1);
        var ran = new List<string>();
        foreach (var (uid, name) in new[] { (X, "x1"), (X, "x2"), (X, "x3"), (Y, "y1"), (Y, "y2"), (Z, "z1") })
        {
            Post(scheduler, uid, name, ran);
        }

        RunPumps();

        Assert.That(ran, Is.EqualTo(new[] { "x1", "y1", "z1", "x2", "y2", "x3" }));
    }

    [Test]
    public void Work_queued_while_running_joins_the_rotation_behind_the_users_already_waiting()
    {
        var scheduler = Deterministic(concurrency: 1);
        var ran = new List<string>();
        scheduler.ContextFor(X).Post(_ =>
        {
            ran.Add("x1");
            // x1's continuation (as an await would queue it) comes after y1, which was already waiting.
            Post(scheduler, X, "x2", ran);
        }, null);
        Post(scheduler, Y, "y1", ran);
        RunPumps();

        Assert.That(ran, Is.EqualTo(new[] { "x1", "y1", "x2" }));
    }

    [Test]
    public void No_more_pumps_than_the_concurrency_are_started_and_an_idle_scheduler_starts_one_again()
    {
        var scheduler = Deterministic(concurrency: 2);
        var ran = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            Post(scheduler, X, "x" + i, ran);
        }

        Assert.That(_pumps, Has.Count.EqualTo(2));
        RunPumps();
        Assert.That(ran, Has.Count.EqualTo(10));
        Assert.That(scheduler.Queued, Is.Zero);

        Post(scheduler, Y, "y", ran);
        Assert.That(_pumps, Has.Count.EqualTo(1), "the pumps ended when the queues were empty, so a new item starts one");
    }

    [Test]
    public void A_pump_gives_its_thread_back_after_a_batch_and_queues_itself_again()
    {
        var scheduler = Deterministic(concurrency: 1);
        var ran = new List<string>();
        for (var i = 0; i < FairShareScheduler.BatchSize + 3; i++)
        {
            Post(scheduler, X, "x", ran);
        }

        _pumps.Dequeue()();

        Assert.That(ran, Has.Count.EqualTo(FairShareScheduler.BatchSize));
        Assert.That(_pumps, Has.Count.EqualTo(1), "the pump queued itself again");
        RunPumps();
        Assert.That(ran, Has.Count.EqualTo(FairShareScheduler.BatchSize + 3));
    }

    [Test]
    public void A_pump_gives_its_thread_back_once_its_time_slice_is_used_even_before_a_batch()
    {
        // Each item takes 40% of the slice: the third starts past 80%, and the pump stops after it (120%), not after 64.
        var clock = new SteppedClock();
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue, clock, inlineWhenIdle: false);
        var ran = 0;
        for (var i = 0; i < 10; i++)
        {
            scheduler.ContextFor(X).Post(_ =>
            {
                ran++;
                clock.Advance(FairShareScheduler.Slice * 0.4);
            }, null);
        }

        _pumps.Dequeue()();

        Assert.That(ran, Is.EqualTo(3), "the pump stopped once its slice was used");
        Assert.That(_pumps, Has.Count.EqualTo(1), "and queued itself again for the rest");
        RunPumps();
        Assert.That(ran, Is.EqualTo(10));
    }

    [Test]
    public void An_item_that_throws_is_reported_and_the_pump_goes_on()
    {
        var scheduler = Deterministic(concurrency: 1);
        var ran = new List<string>();
        scheduler.ContextFor(X).Post(_ => throw new InvalidOperationException("boom"), null);
        Post(scheduler, X, "after", ran);
        RunPumps();

        Assert.That(_faults.Select(f => f.Message), Is.EqualTo(new[] { "boom" }));
        Assert.That(ran, Is.EqualTo(new[] { "after" }));
    }

    [Test]
    public void Items_run_under_their_users_context_and_the_previous_context_is_restored()
    {
        var scheduler = Deterministic(concurrency: 1);
        uint? seen = null;
        scheduler.ContextFor(Y).Post(_ => seen = (SynchronizationContext.Current as UserSynchronizationContext)?.Uid, null);
        RunPumps();

        Assert.That(seen, Is.EqualTo(Y));
        Assert.That(SynchronizationContext.Current, Is.Not.InstanceOf<UserSynchronizationContext>());
    }

    [Test]
    public async Task An_async_session_run_under_a_context_comes_back_to_it_after_every_await_and_its_result_and_fault_reach_the_caller()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add);
        var context = scheduler.ContextFor(X);
        var uids = new List<uint?>();

        await context.RunAsync(async () =>
        {
            for (var i = 0; i < 3; i++)
            {
                await Task.Delay(5);
                uids.Add((SynchronizationContext.Current as UserSynchronizationContext)?.Uid);
            }
        });
        var failed = context.RunAsync(async () =>
        {
            await Task.Yield();
            throw new InvalidOperationException("session failed");
        });

        Assert.That(uids, Is.EqualTo(new uint?[] { X, X, X }));
        Assert.That(async () => await failed, Throws.InvalidOperationException.With.Message.EqualTo("session failed"));
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task The_callers_async_local_state_flows_into_the_work()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add);
        var local = new AsyncLocal<string>{ Value = "session 7" };
        string? seen = null;

        await scheduler.ContextFor(X).RunAsync(async () =>
        {
            await Task.Yield();
            seen = local.Value;
        });

        Assert.That(seen, Is.EqualTo("session 7"));
    }


    // Pumps run by the test, and nothing run where it is posted: the order is the queues' alone (see FairShareSchedulerInlineTests).
    [Test]
    public void A_loop_resumed_in_an_item_counts_its_slice_from_the_item_not_from_its_last_wait()
    {
        // A reused upstream session's reply read at once: the reader last waited one message ago. Yielding there sent every
        // message's first upstream reply back to the queue, a pump's wake-up for a thread held a few microseconds.
        var clock = new SteppedClock();
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue, clock, inlineWhenIdle: false);
        var budget = ThreadBudget.Start(clock);
        clock.Advance(ThreadBudget.Slice * 20);
        bool? wentOn = null;
        bool? spentLater = null;
        scheduler.ContextFor(X).Post(_ =>
        {
            clock.Advance(ThreadBudget.Slice / 2);
            wentOn = budget.AfterStepAsync(waited: false).AsTask().IsCompleted;
            clock.Advance(ThreadBudget.Slice);
            spentLater = budget.Spent();
        }, null);
        RunPumps();

        Assert.That(_faults, Is.Empty);
        Assert.That(wentOn, Is.True, "half a slice into the item, the step goes on");
        Assert.That(spentLater, Is.True, "an item that runs past its slice still yields");
    }

    private FairShareScheduler Deterministic(int concurrency) => new(concurrency, _faults.Add, _pumps.Enqueue, inlineWhenIdle: false);

    private static void Post(FairShareScheduler scheduler, uint uid, string name, List<string> ran) =>
        scheduler.ContextFor(uid).Post(_ => ran.Add(name), null);

    private void RunPumps()
    {
        while (_pumps.TryDequeue(out var pump))
        {
            pump();
        }
    }
}
