using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// While other users are served, a pump runs a crowded user's items at <see cref="FairShareScheduler.DemotedNice"/> and
/// sets its thread back to 0 before it gives the thread back. The thread's nice value is a field here (the pumps run on
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
    public void A_crowded_users_items_run_demoted_while_another_user_is_served_and_the_thread_goes_back_at_nice_0()
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
        RunPumps();

        Assert.That(ran, Is.EqualTo(new[] { ("y1", 0), ("x1", FairShareScheduler.DemotedNice), ("x2", FairShareScheduler.DemotedNice), ("y2", 0), ("x3", FairShareScheduler.DemotedNice) }));
        Assert.That(_nice, Is.Zero, "the pump set its thread back before returning it");
        Assert.That(_niceCalls, Is.EqualTo(new[] { FairShareScheduler.DemotedNice, 0, FairShareScheduler.DemotedNice, 0 }), "a call only where the value changes");
        Assert.That(_faults, Is.Empty);
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
        Assert.That(_niceCalls, Is.Empty);
    }

    [Test]
    public void Once_other_users_have_been_quiet_for_the_served_period_a_crowded_user_runs_at_nice_0_again()
    {
        var scheduler = Scheduler();
        var ran = new List<(string Item, int Nice)>();
        Post(scheduler, Y, "y1", ran);
        Post(scheduler, X, "x1", ran);
        Post(scheduler, X, "x2", ran);
        RunPumps();
        Assert.That(ran[^1], Is.EqualTo(("x2", FairShareScheduler.DemotedNice)));

        _clock.Advance(FairShareScheduler.OthersServedFor);
        Post(scheduler, X, "x3", ran);
        Post(scheduler, X, "x4", ran);
        RunPumps();

        Assert.That(ran.Skip(3), Is.EqualTo(new[] { ("x3", 0), ("x4", 0) }));
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
        Post(scheduler, X, "x1", ran);
        Post(scheduler, X, "x2", ran);
        RunPumps();

        Assert.That(ran, Has.Count.EqualTo(3));
        Assert.That(refused, Is.EqualTo(2), "tried for x1 and again for x2, never to set back what was not set");
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

    private void RunPumps()
    {
        while (_pumps.TryDequeue(out var pump))
        {
            pump();
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
