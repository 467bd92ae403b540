using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// An item posted while nothing waits runs on the posting thread (a socket completion runs its session's step at once),
/// but only where the poster holds nothing (a socket thread, or code that says so), never nested in another item, and
/// never ahead of its own user's queued work. Pumps are collected and run by the test (light and crowded users under
/// load: FairShareSchedulerLightUserTests).
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
    public async Task An_item_posted_while_its_own_user_has_one_waiting_is_queued_behind_it()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        PostFromDedicatedThread(scheduler, X, "x1", ran);
        await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x2")));

        Assert.That(ran, Is.Empty, "x2 did not overtake x1");
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2" }));
    }

    [Test]
    public async Task An_item_of_a_crowded_user_posted_while_a_pump_runs_is_queued_even_with_a_slot_free()
    {
        // Under load a crowded user's step run on a socket thread would hold that thread's other connections outside
        // the users' turns.
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var ran = new List<string>();
        PostFromDedicatedThread(scheduler, X, "x1", ran);
        var pump = _pumps.Dequeue();
        using var running = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        PostFromDedicatedThread(scheduler, X, "x2", ran);
        scheduler.ContextFor(X).Post(_ =>
        {
            running.Set();
            release.Wait();
        }, null);
        var pumping = Task.Run(pump);
        running.Wait();

        // The pump runs x1, x2, then blocks in the third item; nothing is queued, a slot is free. X had three items in
        // the scheduler at once.
        await Task.Run(() => PostHoldingNothing(scheduler, X, _ => ran.Add("x4")));
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2" }), "x4 was queued, not run on the posting thread");
        release.Set();
        await pumping;
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "x2", "x4" }));
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
        PostFromDedicatedThread(scheduler, Y, "y1", ran);
        Assert.That(_pumps, Is.Empty);
        release.Set();
        await inline;

        Assert.That(_pumps, Has.Count.EqualTo(1), "the inline item's slot became a pump for y1");
        RunPumps();
        Assert.That(ran, Is.EqualTo(new[] { "x1", "y1" }));
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public async Task While_its_session_does_blocking_work_a_context_s_items_go_to_the_pumps_even_from_where_they_could_run()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, _pumps.Enqueue);
        var context = scheduler.ContextFor(X);
        var ran = new List<string>();
        var blocking = context.EnterBlockingWork();
        await Task.Run(() => PostHoldingNothing(context, _ => ran.Add("during")));

        Assert.That(ran, Is.Empty, "queued for a pump, not run on the posting thread");
        Assert.That(_pumps, Has.Count.EqualTo(1));
        RunPumps();

        blocking.Dispose();
        blocking.Dispose();
        Assert.That(context.InBlockingWork, Is.False, "a scope ends once, however often it is disposed");
        await Task.Run(() => PostHoldingNothing(context, _ => ran.Add("after")));
        Assert.That(ran, Is.EqualTo(new[] { "during", "after" }), "after it, run where posted again");
    }

    [Test]
    public async Task Blocking_work_started_in_a_session_s_step_continues_on_a_pump_and_comes_back_with_its_result()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add);
        var context = scheduler.ContextFor(X);
        var (stepThread, workThread, inBlocking, result) = await RunOnDedicatedThread(() =>
        {
            var done = new TaskCompletionSource<(int, int, bool, int)>();
            using (InlineContinuations.Allow())
            {
                context.Post(async _ =>
                {
                    var step = Environment.CurrentManagedThreadId;
                    var seen = (0, false);
                    var value = await BlockingWork.RunAsync(() =>
                    {
                        seen = (Environment.CurrentManagedThreadId, context.InBlockingWork);
                        return ValueTask.FromResult(42);
                    });
                    done.SetResult((step, seen.Item1, seen.Item2, value));
                }, null);
            }

            return done.Task;
        });

        Assert.That(workThread, Is.Not.EqualTo(stepThread), "the work left the thread the step ran on");
        Assert.That(inBlocking, Is.True);
        Assert.That(result, Is.EqualTo(42));
        Assert.That(context.InBlockingWork, Is.False);
    }

    [Test]
    public async Task Blocking_work_with_no_session_context_runs_on_the_thread_pool()
    {
        var onPool = await RunOnDedicatedThread(() => BlockingWork.RunAsync(() => ValueTask.FromResult(Thread.CurrentThread.IsThreadPoolThread)).AsTask());

        Assert.That(onPool, Is.True);
    }

    private static Task<T> RunOnDedicatedThread<T>(Func<Task<T>> start) =>
        Task.Factory.StartNew(start, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private static void PostHoldingNothing(UserSynchronizationContext context, SendOrPostCallback work)
    {
        using var holdingNothing = InlineContinuations.Allow();
        context.Post(work, null);
    }

    private static void PostHoldingNothing(FairShareScheduler scheduler, uint uid, SendOrPostCallback work) =>
        PostHoldingNothing(scheduler.ContextFor(uid), work);

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
