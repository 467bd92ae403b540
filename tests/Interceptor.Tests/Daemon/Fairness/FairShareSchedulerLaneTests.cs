using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// A user alone runs outside the scheduler (FairShareScheduler.Lanes): while no other user's work has entered it for
/// AloneAfter, that user's sessions step with no context; once another user's work enters, they go back to their turn
/// (queued for a pump) before their next step. Blocking work never leaves the context. Pumps are collected and run by
/// the test; the clock is moved by hand.
/// </summary>
public class FairShareSchedulerLaneTests
{
    private const uint X = 1001;
    private const uint Y = 1002;

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];
    private readonly SteppedClock _clock = new();

    [Test]
    public async Task A_step_of_the_only_user_with_work_goes_on_and_leaves_its_context()
    {
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        bool? wentOn = null;
        SynchronizationContext? during = null;
        SynchronizationContext? after = null;
        await Task.Run(() => PostHoldingNothing(x, _ =>
        {
            during = SynchronizationContext.Current;
            wentOn = x.GoOnHere();
            after = SynchronizationContext.Current;
        }));

        Assert.That(_faults, Is.Empty);
        Assert.That(during, Is.SameAs(x), "the item ran under X's context");
        Assert.That(wentOn, Is.True);
        Assert.That(after, Is.Null, "the step's next awaits capture no context");
    }

    [Test]
    public async Task Once_another_users_work_enters_a_step_outside_its_context_goes_back_to_its_turn_on_a_pump()
    {
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(x, _ => { }));
        Assert.That(await Task.Run(x.GoOnHere), Is.True, "X alone: a step with no context goes on");

        await Task.Run(() => PostHoldingNothing(scheduler.ContextFor(Y), _ => { }));
        Assert.That(await Task.Run(x.GoOnHere), Is.False, "Y's work entered: X's next step goes back to its turn");

        int? ranOn = null;
        SynchronizationContext? ranUnder = null;
        await Task.Run(() => x.Queue(() =>
        {
            ranOn = Environment.CurrentManagedThreadId;
            ranUnder = SynchronizationContext.Current;
        }));
        Assert.That(ranOn, Is.Null, "queued, not run on the calling thread");
        Assert.That(_pumps, Has.Count.EqualTo(1));

        RunPumps();
        Assert.That(ranOn, Is.Not.Null, "run by the pump");
        Assert.That(ranUnder, Is.SameAs(x), "back under X's context: its awaits go through the scheduler again");
    }

    [Test]
    public async Task A_loop_sent_back_to_its_turn_goes_on_in_the_pump_under_its_context_not_on_the_pool()
    {
        // The loop awaited with no context: had it resumed through an async helper completed in the pump, .NET would have
        // handed it to the thread pool, outside the scheduler (found by the attack review).
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(x, _ => { }));
        await Task.Run(() => PostHoldingNothing(scheduler.ContextFor(Y), _ => { }));
        var budget = ThreadBudget.Start(_clock, x);
        var loop = Task.Run(async () =>
        {
            await budget.AfterStepAsync(waited: true);
            return (Environment.CurrentManagedThreadId, SynchronizationContext.Current);
        });
        Assert.That(SpinWait.SpinUntil(() => _pumps.Count > 0, TimeSpan.FromSeconds(10)), Is.True, "the step was queued");

        var pumpThread = 0;
        var pump = new Thread(() =>
        {
            pumpThread = Environment.CurrentManagedThreadId;
            RunPumps();
        });
        pump.Start();
        pump.Join();
        var (thread, context) = await loop;

        Assert.That(thread, Is.EqualTo(pumpThread), "the loop went on in the pump");
        Assert.That(context, Is.SameAs(x), "under X's context: its next awaits go through the scheduler");
    }

    [Test]
    public async Task A_user_whose_sessions_keep_using_up_slices_is_not_alone_until_the_mark_runs_out()
    {
        // A storm of pipelined commands: run outside the scheduler, its steps would hold the socket threads a slice each.
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(x, _ => { }));
        for (var i = 0; i < FairShareScheduler.SlicesToStayInTurns - 1; i++)
        {
            x.SliceUsed();
        }

        Assert.That(await Task.Run(x.GoOnHere), Is.True, "a slice now and then (a preempted step) leaves X alone");
        scheduler.ContextFor(X).SliceUsed();
        Assert.That(await Task.Run(x.GoOnHere), Is.False, "X is the only user, but storms");

        _clock.Advance(FairShareScheduler.LoadWindow + TimeSpan.FromMilliseconds(1));
        Assert.That(await Task.Run(x.GoOnHere), Is.True, "the storm's mark ran out");
    }

    [Test]
    public async Task Many_sessions_of_a_user_alone_in_the_scheduler_at_once_leave_it_alone()
    {
        // A site's bulk mailer: 20 sessions in lock-step, each step a few microseconds. The scheduler's flood mark
        // (FloodSessions at once) once kept such a user in its turns for good.
        var scheduler = Scheduler();
        var ran = 0;
        await Task.Run(() =>
        {
            for (var i = 0; i < 5 * FairShareScheduler.FloodSessions; i++)
            {
                scheduler.ContextFor(X).Queue(() => ran++);
            }
        });
        Assert.That(ran, Is.Zero, "all of them wait in the scheduler at once");

        Assert.That(await Task.Run(scheduler.ContextFor(X).GoOnHere), Is.True);
        RunPumps();
        Assert.That(ran, Is.EqualTo(5 * FairShareScheduler.FloodSessions));
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task The_user_is_alone_again_only_after_AloneAfter_without_another_users_work()
    {
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(scheduler.ContextFor(Y), _ => { }));
        await Task.Run(() => PostHoldingNothing(x, _ => { }));

        _clock.Advance(FairShareScheduler.AloneAfter - TimeSpan.FromMilliseconds(1));
        Assert.That(await Task.Run(x.GoOnHere), Is.False, "Y's work entered just under AloneAfter ago");
        _clock.Advance(TimeSpan.FromMilliseconds(2));
        Assert.That(await Task.Run(x.GoOnHere), Is.True);
    }

    [Test]
    public async Task A_user_is_not_alone_while_another_users_work_waits_in_the_scheduler_however_long_ago_it_entered()
    {
        // A session that keeps yielding never leaves the scheduler, so never enters it again (review of dc4c4a4).
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => scheduler.ContextFor(Y).Post(_ => { }, null));
        await Task.Run(() => PostHoldingNothing(x, _ => { }));
        _clock.Advance(FairShareScheduler.AloneAfter * 2);
        Assert.That(await Task.Run(x.GoOnHere), Is.False, "Y's item still waits for a pump");

        RunPumps();
        Assert.That(await Task.Run(x.GoOnHere), Is.True, "Y's work is done, and X's entered last, long ago");
    }

    [Test]
    public async Task A_step_in_its_own_item_goes_on_under_its_context_while_another_user_has_work()
    {
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(scheduler.ContextFor(Y), _ => { }));
        bool? wentOn = null;
        SynchronizationContext? after = null;
        await Task.Run(() => PostHoldingNothing(x, _ =>
        {
            wentOn = x.GoOnHere();
            after = SynchronizationContext.Current;
        }));

        Assert.That(wentOn, Is.True, "where the scheduler runs it, as before");
        Assert.That(after, Is.SameAs(x), "and its awaits still go through the scheduler");
    }

    [Test]
    public async Task Blocking_work_keeps_its_context_even_for_a_user_alone()
    {
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        SynchronizationContext? after = null;
        await Task.Run(() => PostHoldingNothing(x, _ =>
        {
            using (x.EnterBlockingWork())
            {
                Assert.That(x.GoOnHere(), Is.True);
                after = SynchronizationContext.Current;
            }
        }));

        Assert.That(_faults, Is.Empty);
        Assert.That(after, Is.SameAs(x), "its items stay on the pumps");
    }

    [Test]
    public async Task A_continuation_run_inside_another_users_item_goes_back_to_its_own_turn()
    {
        // A task completed in Y's step resumes X's session there: X must not go on in Y's turn, nor leave Y's context.
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        var y = scheduler.ContextFor(Y);
        await Task.Run(() => PostHoldingNothing(x, _ => { }));
        bool? wentOn = null;
        SynchronizationContext? after = null;
        await Task.Run(() => PostHoldingNothing(y, _ =>
        {
            wentOn = x.GoOnHere();
            after = SynchronizationContext.Current;
        }));

        Assert.That(wentOn, Is.False);
        Assert.That(after, Is.SameAs(y));
    }

    [Test]
    public async Task A_session_of_a_user_alone_starts_on_the_starting_thread_with_no_context_and_knows_its_lane()
    {
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(x, _ => { }));

        var alone = await Task.Run(() => StartAndLook(x));
        await Task.Run(() => PostHoldingNothing(scheduler.ContextFor(Y), _ => { }));
        var among = await Task.Run(() => StartAndLook(x));

        Assert.That(alone, Is.EqualTo((true, (SynchronizationContext?)null, (IStepLane?)x)));
        Assert.That(among, Is.EqualTo((true, (SynchronizationContext?)x, (IStepLane?)x)), "among others: under its context");
        Assert.That(StepLanes.Current, Is.Null, "the lane stays in the session's flow");
    }

    [Test]
    public async Task A_session_of_a_user_alone_ends_its_connection_on_the_thread_of_its_last_step()
    {
        // What follows the session (the listener's bookkeeping, the socket's close) runs where its last step ran, as on a
        // socket thread, instead of waking a pool thread for it: once per relayed message.
        var scheduler = Scheduler();
        var x = scheduler.ContextFor(X);
        await Task.Run(() => PostHoldingNothing(x, _ => { }));
        var reply = new TaskCompletionSource();

        async Task<int> ServeAsync()
        {
            await x.RunAsync(async () => await reply.Task);
            return Environment.CurrentManagedThreadId;
        }

        var served = await Task.Run(() => Task.FromResult(ServeAsync()));

        // The session's last wait ends on a thread with nothing else to get back to (a socket thread).
        var lastStep = 0;
        var completing = new Thread(() =>
        {
            lastStep = Environment.CurrentManagedThreadId;
            reply.SetResult();
        });
        completing.Start();
        completing.Join();

        Assert.That(await served.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo(lastStep));
        Assert.That(_pumps, Is.Empty, "its user was alone: no pump");
    }

    private static (bool OnStartingThread, SynchronizationContext? Context, IStepLane? Lane) StartAndLook(UserSynchronizationContext context)
    {
        var starting = Environment.CurrentManagedThreadId;
        (bool, SynchronizationContext?, IStepLane?) seen = default;
        _ = context.RunAsync(() =>
        {
            seen = (Environment.CurrentManagedThreadId == starting, SynchronizationContext.Current, StepLanes.Current);
            return Task.CompletedTask;
        });
        return seen;
    }

    private FairShareScheduler Scheduler() => new(2, _faults.Add, _pumps.Enqueue, _clock);

    private static void PostHoldingNothing(UserSynchronizationContext context, SendOrPostCallback work)
    {
        using var holdingNothing = InlineContinuations.Allow();
        context.Post(work, null);
    }

    private void RunPumps()
    {
        while (_pumps.TryDequeue(out var pump))
        {
            pump();
        }
    }
}
