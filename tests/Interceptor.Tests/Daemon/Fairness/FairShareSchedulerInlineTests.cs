using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// An item posted while nothing waits runs on the posting thread (a socket completion runs its session's step at once),
/// but only where the poster holds nothing (a socket thread, or code that says so), never nested in another item, and
/// never ahead of queued work. Pumps are collected and run by the test.
/// </summary>
public class FairShareSchedulerInlineTests
{
    private const uint X = 1001;
    private const uint Y = 1002;

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];

    [Test]
    public async Task An_item_posted_by_code_that_holds_nothing_while_nothing_waits_runs_before_post_returns_under_its_users_context()
    {
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue);
        var (postingThread, ranOn, uid) = await Task.Run(() =>
        {
            int? thread = null;
            uint? seen = null;
            using (InlineContinuations.Allow())
            {
                scheduler.ContextFor(X).Post(_ =>
                {
                    thread = Environment.CurrentManagedThreadId;
                    seen = (SynchronizationContext.Current as UserSynchronizationContext)?.Uid;
                }, null);
            }

            return (Environment.CurrentManagedThreadId, thread, seen);
        });

        Assert.That(ranOn, Is.EqualTo(postingThread), "run inline, before Post returned");
        Assert.That(uid, Is.EqualTo(X));
        Assert.That(_pumps, Is.Empty, "no pump was needed");
        Assert.That(scheduler.Queued, Is.Zero);
    }

    [Test]
    public async Task An_item_posted_from_any_other_thread_is_queued_for_a_pump_not_run_there()
    {
        // A plain pool thread may be completing a task under a lock; a dedicated thread has its own work to get back to.
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        await Task.Run(() => scheduler.ContextFor(X).Post(_ => ran.Add("x"), null));
        PostFromDedicatedThread(scheduler, Y, "y", ran);

        Assert.That(ran, Is.Empty);
        Assert.That(_pumps, Has.Count.EqualTo(2));
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x", "y" }));
    }

    [Test]
    public async Task A_session_started_with_RunAsync_takes_its_first_step_on_the_starting_thread_when_nothing_waits()
    {
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue);
        var (startingThread, firstStepThread) = await Task.Run(() =>
        {
            int? first = null;
            _ = scheduler.ContextFor(X).RunAsync(() =>
            {
                first = Environment.CurrentManagedThreadId;
                return Task.CompletedTask;
            });
            return (Environment.CurrentManagedThreadId, first);
        });

        Assert.That(firstStepThread, Is.EqualTo(startingThread));
        Assert.That(InlineContinuations.Allowed, Is.False, "the permission ends with RunAsync");
    }

    [Test]
    public async Task An_item_posted_while_another_user_waits_is_queued_behind_it()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        PostFromDedicatedThread(scheduler, X, "x1", ran);
        await Task.Run(() => PostHoldingNothing(scheduler, Y, _ => ran.Add("y1")));

        Assert.That(ran, Is.Empty, "y1 did not overtake x1");
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "y1" }));
    }

    [Test]
    public async Task A_post_from_inside_a_running_item_is_queued_not_run_nested()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        await Task.Run(() => PostHoldingNothing(scheduler, X, _ =>
        {
            ran.Add("x1 start");
            PostHoldingNothing(scheduler, X, _ => ran.Add("x2"));
            ran.Add("x1 end");
        }));

        Assert.That(ran, Is.EqualTo(new[] { "x1 start", "x1 end" }));
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1 start", "x1 end", "x2" }));
    }

    [Test]
    public async Task An_item_run_inline_holds_a_slot_and_hands_it_to_a_pump_for_work_queued_meanwhile()
    {
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        using var running = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var inline = Task.Run(() => PostHoldingNothing(scheduler, X, _ =>
        {
            running.Set();
            release.Wait();
            ran.Add("x1");
        }));
        running.Wait();

        // The only slot is taken by the inline item: y1 is queued, and no pump may start while the slot is held.
        await Task.Run(() => PostHoldingNothing(scheduler, Y, _ => ran.Add("y1")));
        Assert.That(_pumps, Is.Empty);
        release.Set();
        await inline;

        Assert.That(_pumps, Has.Count.EqualTo(1), "the inline item's slot became a pump for y1");
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "y1" }));
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
}
