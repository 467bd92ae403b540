using Interceptor.Core.Threading;
using Interceptor.Daemon.Fairness;
using NUnit.Framework;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// While other users are served, a pump runs the items of a user with <see cref="FairShareScheduler.FloodSessions"/>
/// sessions in the scheduler at once at <see cref="FairShareScheduler.DemotedNice"/>, and sets its thread back to 0
/// before it gives the thread back. Every Post here is a session of its own (a context of its own). The thread's nice value is a field here (the pumps run on
/// the test's thread, one at a time); the real one is Linux's ThreadNice.
/// </summary>
public class FairShareSchedulerDemotionTests
{
    private const uint X = 1001;
    private const uint Y = 1002;

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];
    private readonly List<int> _niceCalls = [];
    private SteppedClock _clock = new();
    private int _nice;

    [SetUp]
    public void FreshThreadAndClock()
    {
        // NUnit keeps one instance of the fixture for all its tests.
        _niceCalls.Clear();
        _nice = 0;
        _clock = new SteppedClock();
    }

    [Test]
    public void A_flooding_users_items_run_demoted_while_another_user_is_served_and_the_thread_goes_back_at_nice_0()
    {
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        scheduler.ContextFor(X).Post(_ =>
        {
            ran.Add(("x1", _nice));
            Post(scheduler, Y, "y2", ran); // Y's next step, one at a time: Y stays light
        }, null);
        Post(scheduler, X, "x2", ran);
        Post(scheduler, X, "x3", ran);
        Post(scheduler, X, "x4", ran);
        RunPumps();

        const int Demoted = FairShareScheduler.DemotedNice;
        Assert.That(ran, Is.EqualTo(new[] { ("y1", 0), ("x1", Demoted), ("x2", Demoted), ("y2", 0), ("x3", Demoted), ("x4", Demoted) }));
        Assert.That(_nice, Is.Zero, "the pump set its thread back before returning it");
        Assert.That(_niceCalls, Is.EqualTo(new[] { 0, Demoted, 0, Demoted, 0, Demoted, 0, Demoted, 0 }),
            "0 once on a thread the pump had not seen (it may have been born demoted), then back to 0 after each demoted " +
            "item, before the pump takes the scheduler's lock for the next one");
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public void A_neighbours_few_sessions_queued_behind_a_flood_are_not_taken_for_one()
    {
        // Under a flood every user's sessions queue: four parallel senders of a modest site reach the flood's session
        // count without flooding anything (third attack review of pacing, which uses the same mark).
        const uint N = 1003;
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, 10, ran);
        PostSessions(scheduler, N, "n", 1, 4, ran);
        RunPumps();

        Assert.That(ran.Where(r => r.Item.StartsWith('n')).Select(r => r.Nice), Is.All.Zero, "four sessions, fewer than the flood's ten");
        Assert.That(ran.Where(r => r.Item.StartsWith('x')).Select(r => r.Nice), Has.Some.EqualTo(FairShareScheduler.DemotedNice));
    }

    [Test]
    public void Light_users_do_not_make_a_neighbours_few_sessions_a_flood()
    {
        // Three one-session users pulled a mean of the others below her four (attack review of the first version).
        const uint N = 1003;
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        Post(scheduler, 1005, "l1", ran);
        Post(scheduler, 1006, "m1", ran);
        PostSessions(scheduler, X, "x", 1, 10, ran);
        PostSessions(scheduler, N, "n", 1, 4, ran);
        RunPumps();

        Assert.That(ran.Where(r => r.Item.StartsWith('n')).Select(r => r.Nice), Is.All.Zero);
        Assert.That(ran.Where(r => r.Item.StartsWith('x')).Select(r => r.Nice), Has.Some.EqualTo(FairShareScheduler.DemotedNice));
    }

    [Test]
    public void A_flood_does_not_hide_behind_a_bigger_one()
    {
        const uint Big = 1004;
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, Big, "b", 1, 40, ran);
        PostSessions(scheduler, X, "x", 1, FairShareScheduler.FloodSessionsAnyway, ran);
        RunPumps();

        Assert.That(ran.Where(r => r.Item.StartsWith('x')).Select(r => r.Nice), Has.Some.EqualTo(FairShareScheduler.DemotedNice),
            "16 sessions flood, whatever waits beside them");
        Assert.That(ran.Where(r => r.Item.StartsWith('b')).Select(r => r.Nice), Has.Some.EqualTo(FairShareScheduler.DemotedNice));
    }

    [Test]
    public void Two_floods_of_a_size_are_both_marked()
    {
        const uint Z = 1004;
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, 6, ran);
        PostSessions(scheduler, Z, "z", 1, 6, ran);
        RunPumps();

        Assert.That(ran.Where(r => r.Item.StartsWith('x')).Select(r => r.Nice), Has.Some.EqualTo(FairShareScheduler.DemotedNice));
        Assert.That(ran.Where(r => r.Item.StartsWith('z')).Select(r => r.Nice), Has.Some.EqualTo(FairShareScheduler.DemotedNice));
        Assert.That(ran.Single(r => r.Item == "y1").Nice, Is.Zero);
    }

    [Test]
    public void A_single_user_however_crowded_is_never_demoted()
    {
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        for (var i = 1; i <= 5; i++)
        {
            Post(scheduler, X, "x" + i, ran);
        }

        RunPumps();

        Assert.That(ran.Select(r => r.Nice), Is.All.Zero);
        Assert.That(_niceCalls, Has.No.Member(FairShareScheduler.DemotedNice));
    }

    [Test]
    public void Once_other_users_have_been_quiet_for_the_served_period_a_crowded_user_runs_at_nice_0_again()
    {
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, 4, ran);
        RunPumps();
        Assert.That(ran[^1], Is.EqualTo(("x4", FairShareScheduler.DemotedNice)));

        _clock.Advance(FairShareScheduler.OthersServedFor);
        PostSessions(scheduler, X, "x", 5, 8, ran);
        RunPumps();

        Assert.That(ran.Skip(5).Select(r => r.Nice), Is.All.Zero);
    }

    [Test]
    public void A_refused_nice_value_leaves_the_thread_as_it_is_and_nothing_is_set_back()
    {
        var refused = 0;
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue, _clock, inlineWhenIdle: false, setThreadNice: _ =>
        {
            refused++;
            return false;
        });
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, 4, ran);
        RunPumps();

        Assert.That(ran, Has.Count.EqualTo(5));
        Assert.That(refused, Is.EqualTo(5), "0 once on an unseen thread, then tried for each of X's items; never set back what was not set");
    }

    [Test]
    public void A_demoted_item_is_marked_as_such_for_code_that_holds_what_others_wait_for()
    {
        // The store's commit on the caller's thread asks ThreadDemotion and leaves a demoted item's commit to its writer.
        var scheduler = Scheduler();
        var marks = new List<(string Item, bool Demoted)>();
        scheduler.ContextFor(Y).Post(_ => marks.Add(("y1", ThreadDemotion.IsDemoted)), null);
        for (var i = 1; i <= FairShareScheduler.FloodSessions; i++)
        {
            var name = "x" + i;
            scheduler.ContextFor(X).Post(_ => marks.Add((name, ThreadDemotion.IsDemoted)), null);
        }

        RunPumps();

        Assert.That(marks, Is.EqualTo(new[] { ("y1", false), ("x1", true), ("x2", true), ("x3", true), ("x4", true) }));
        Assert.That(ThreadDemotion.IsDemoted, Is.False, "not left set on the pump's thread");
    }

    [Test]
    public void A_refused_restore_stops_demotion_and_is_reported_once()
    {
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue, _clock, inlineWhenIdle: false, setThreadNice: nice =>
        {
            _niceCalls.Add(nice);
            if (nice != 0)
            {
                _nice = nice;
            }

            return nice != 0; // raising works, going back does not (the unit's LimitNICE lost, say)
        });
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, 4, ran);
        RunPumps();

        Assert.That(scheduler.Demotes, Is.False);
        Assert.That(_faults, Has.Count.EqualTo(1));
        Assert.That(_niceCalls.Count(n => n == FairShareScheduler.DemotedNice), Is.EqualTo(1), "nothing raised after the failed restore");
    }

    [Test]
    public void A_user_with_fewer_sessions_at_once_than_a_flood_is_not_demoted()
    {
        // A site's few parallel senders: busy (queued), but not a flood.
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, FairShareScheduler.FloodSessions - 1, ran);
        RunPumps();

        Assert.That(ran.Select(r => r.Nice), Is.All.Zero);
    }

    [Test]
    public void A_flooding_users_blocking_work_is_never_demoted()
    {
        // It starts processes (an automatic suspension's nft), which would inherit the value, and holds locks.
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        PostSessions(scheduler, X, "x", 1, 3, ran);
        var blocking = scheduler.ContextFor(X);
        var scope = blocking.EnterBlockingWork();
        blocking.Post(_ => ran.Add(("x4 blocking", _nice)), null);
        RunPumps();
        scope.Dispose();

        Assert.That(ran.Single(r => r.Item == "x4 blocking").Nice, Is.Zero);
        Assert.That(ran.Single(r => r.Item == "x1").Nice, Is.EqualTo(FairShareScheduler.DemotedNice));
    }

    private FairShareScheduler Scheduler() =>
        new(1, _faults.Add, _pumps.Enqueue, _clock, inlineWhenIdle: false, setThreadNice: nice =>
        {
            _niceCalls.Add(nice);
            _nice = nice;
            return true;
        });

    private void Post(FairShareScheduler scheduler, uint uid, string name, List<(string Item, int Nice)> ran) =>
        scheduler.ContextFor(uid).Post(_ => ran.Add((name, _nice)), null);

    private void PostSessions(FairShareScheduler scheduler, uint uid, string prefix, int first, int last, List<(string Item, int Nice)> ran)
    {
        for (var i = first; i <= last; i++)
        {
            Post(scheduler, uid, prefix + i, ran);
        }
    }

    private void RunPumps()
    {
        while (_pumps.TryDequeue(out var pump))
        {
            pump();
        }
    }
}
