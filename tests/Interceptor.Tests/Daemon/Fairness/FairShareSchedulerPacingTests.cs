using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// While the CPU is contended, a user flooding among others gets only its pace's share of each
/// <see cref="FairShareScheduler.PaceWindow"/>: its items wait for the window's end even with a pump free, while other
/// users' items still run; at the window's end a timer starts a pump for them. The pumps run on the test's thread; the
/// clock and the pressure are moved by hand (a flood item "runs" for as long as it advances the clock).
/// </summary>
public class FairShareSchedulerPacingTests
{
    private const uint X = 1001;
    private const uint Y = 1002;
    private static readonly TimeSpan ItemTime = TimeSpan.FromMilliseconds(3);

    private readonly Queue<Action> _pumps = new();
    private readonly List<Exception> _faults = [];
    private readonly List<(uint Uid, double? Share)> _changes = [];
    private readonly List<string> _ran = [];
    private PacingClock _clock = new();
    private long _pressureTotal;

    [SetUp]
    public void Fresh()
    {
        _clock = new PacingClock();
        _pressureTotal = 0;
        _faults.Clear();
        _changes.Clear();
        _ran.Clear();
        _pumps.Clear();
    }

    [Test]
    public void A_flood_among_others_that_spent_its_share_waits_for_the_windows_end_while_another_user_still_runs()
    {
        var scheduler = Scheduler();
        ContendedFloodSeen(scheduler);

        // Paced to half a core: 5 ms of each 10 ms window. Two of X's 3 ms items spend it.
        Y_posts(scheduler, "y2");
        X_posts(scheduler, "x5", "x6", "x7", "x8");
        RunPumps();
        Assert.That(_ran, Is.EqualTo(new[] { "y2", "x5", "x6" }), "x7 waits although the pump is free");
        Assert.That(_changes, Is.EqualTo(new[] { (X, (double?)FloodPace.InitialShare) }), "pacing starts and names the flooding uid");
        Assert.That(scheduler.IsIdle, Is.False, "held work waits: a connection's start must not take it for idle");

        Y_posts(scheduler, "y3");
        RunPumps();
        Assert.That(_ran[^1], Is.EqualTo("y3"), "another user's item runs while the flood is held");
        Assert.That(_ran, Does.Not.Contain("x7"));

        _clock.Advance(FairShareScheduler.PaceWindow);
        RunPumps();
        Assert.That(_ran.Skip(4), Is.EqualTo(new[] { "x7", "x8" }), "the window's end starts a pump for the held items");
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public void What_a_long_item_spent_beyond_its_window_is_owed_by_the_next_windows()
    {
        var scheduler = Scheduler();
        ContendedFloodSeen(scheduler);

        // Half a core: 5 ms a 10 ms window. One 23 ms item owes four windows' worth (20 ms) before X runs again.
        Y_posts(scheduler, "y2");
        X_posts(scheduler, TimeSpan.FromMilliseconds(23), "x5", "x6", "x7", "x8");
        RunPumps();
        Assert.That(_ran, Is.EqualTo(new[] { "y2", "x5" }));
        for (var window = 1; window <= 3; window++)
        {
            _clock.Advance(FairShareScheduler.PaceWindow);
            RunPumps();
            Assert.That(_ran, Is.EqualTo(new[] { "y2", "x5" }), $"still owed after {window} more windows");
        }

        _clock.Advance(FairShareScheduler.PaceWindow);
        RunPumps();
        Assert.That(_ran, Has.Count.EqualTo(2), "the timer is set a millisecond past the window's end (system timers truncate)");
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        RunPumps();
        Assert.That(_ran[^1], Is.EqualTo("x6"), "the debt is paid four windows after the long item");
        Assert.That(scheduler.PacedHolds, Is.EqualTo(2), "one hold for the long item's debt, one after x6; each counted once however often the timer came");
    }

    [Test]
    public void An_item_that_ran_very_long_is_owed_for_half_a_second_at_most()
    {
        var scheduler = Scheduler();
        ContendedFloodSeen(scheduler);
        Y_posts(scheduler, "y2");
        X_posts(scheduler, TimeSpan.FromMilliseconds(300), "x5", "x6", "x7", "x8");
        RunPumps();

        _clock.Advance(FairShareScheduler.PaceWindow * (FairShareScheduler.PaceMostOwed - 1));
        RunPumps();
        Assert.That(_ran, Is.EqualTo(new[] { "y2", "x5" }), "held while the capped debt lasts");
        _clock.Advance(FairShareScheduler.PaceWindow + TimeSpan.FromMilliseconds(1));
        RunPumps();
        Assert.That(_ran, Does.Contain("x6"), $"{FairShareScheduler.PaceMostOwed} windows, not the 60 a 300 ms item would owe at half a core");
    }

    [Test]
    public void A_held_users_blocking_work_is_not_held()
    {
        // It may hold what other users wait for: an automatic suspension's nft run holds the suspensions' own lock. It
        // keeps its place in its user's turn (behind the user's items queued before it), but a spent pace does not stop it.
        var scheduler = Scheduler();
        ContendedFloodSeen(scheduler);
        Y_posts(scheduler, "y2");
        X_posts(scheduler, "x5", "x6");
        var blocking = scheduler.ContextFor(X);
        using (blocking.EnterBlockingWork())
        {
            blocking.Post(_ => _ran.Add("x7 blocking"), null);
            X_posts(scheduler, "x8");
            RunPumps();
        }

        Assert.That(_ran, Is.EqualTo(new[] { "y2", "x5", "x6", "x7 blocking" }), "x6 spent the pace; the blocking item still ran, x8 waits");
    }

    [Test]
    public void Without_contention_a_flood_among_others_is_not_held()
    {
        var scheduler = Scheduler();
        ContendedFloodSeen(scheduler, pressure: 0.05);
        Y_posts(scheduler, "y2");
        X_posts(scheduler, "x5", "x6", "x7", "x8");
        RunPumps();

        Assert.That(_ran, Is.EqualTo(new[] { "y2", "x5", "x6", "x7", "x8" }));
        Assert.That(_changes, Is.Empty);
    }

    [Test]
    public void A_user_alone_is_never_paced_however_contended_the_CPU()
    {
        var scheduler = Scheduler();
        X_posts(scheduler, "x1", "x2", "x3", "x4");
        RunPumps();
        _clock.Advance(TimeSpan.FromMilliseconds(100));
        _pressureTotal += 95_000;
        X_posts(scheduler, "x5", "x6", "x7", "x8");
        RunPumps();

        Assert.That(_ran, Has.Count.EqualTo(8));
        Assert.That(_changes, Is.Empty, "nobody to give way to: the pressure is not even read");
    }

    [Test]
    public void A_flood_paced_once_is_no_longer_held_after_a_quiet_while()
    {
        var scheduler = Scheduler();
        ContendedFloodSeen(scheduler);
        Y_posts(scheduler, "y2");
        X_posts(scheduler, "x5", "x6", "x7", "x8");
        RunPumps();
        _clock.Advance(FairShareScheduler.PaceWindow);
        RunPumps();
        Assert.That(_ran, Does.Contain("x8"));

        // Two quiet seconds, then the flood again among others: it starts unpaced.
        _clock.Advance(TimeSpan.FromSeconds(2));
        _pressureTotal += 1_900_000;
        _ran.Clear();
        Y_posts(scheduler, "y3");
        X_posts(scheduler, "x9", "x10", "x11", "x12");
        RunPumps();

        Assert.That(_ran, Is.EqualTo(new[] { "y3", "x9", "x10", "x11", "x12" }));
        Assert.That(_changes, Is.EqualTo(new[] { (X, (double?)FloodPace.InitialShare), (X, (double?)null) }),
            "the end of pacing is told once the flood has been quiet for a while, not only when the next one starts");
    }

    [Test]
    public void An_unreadable_pressure_paces_nothing()
    {
        var scheduler = new FairShareScheduler(1, _faults.Add, _pumps.Enqueue, _clock, inlineWhenIdle: false,
            pace: new PaceSettings(0.2, 0.1, () => -1, ThreadCpu), onPaceChanged: (uid, share, _) => _changes.Add((uid, share)));
        Y_posts(scheduler, "y1");
        X_posts(scheduler, "x1", "x2", "x3", "x4");
        RunPumps();
        _clock.Advance(TimeSpan.FromMilliseconds(100));
        Y_posts(scheduler, "y2");
        X_posts(scheduler, "x5", "x6", "x7", "x8");
        RunPumps();

        Assert.That(_ran, Has.Count.EqualTo(10));
        Assert.That(_changes, Is.Empty);
    }

    // Y and a flood of X (FloodSessions sessions at once) are served; a load window later the pressure read is the
    // given share of it, so the next flood item paced samples it.
    private void ContendedFloodSeen(FairShareScheduler scheduler, double pressure = 0.9)
    {
        Y_posts(scheduler, "y1");
        X_posts(scheduler, "x1", "x2", "x3", "x4");
        RunPumps();
        _ran.Clear();
        _clock.Advance(FairShareScheduler.LoadWindow);
        _pressureTotal += (long)(pressure * FairShareScheduler.LoadWindow.TotalMicroseconds);
    }

    private FairShareScheduler Scheduler() =>
        new(1, _faults.Add, _pumps.Enqueue, _clock, inlineWhenIdle: false,
            pace: new PaceSettings(0.2, 0.1, () => _pressureTotal, ThreadCpu), onPaceChanged: (uid, share, _) => _changes.Add((uid, share)));

    // The items run on the test's thread and take what they advance the clock by: their CPU time is the clock's.
    private long ThreadCpu() => _clock.GetTimestamp() * (1_000_000_000 / TimeSpan.TicksPerSecond);

    private void Y_posts(FairShareScheduler scheduler, string name) =>
        scheduler.ContextFor(Y).Post(_ => _ran.Add(name), null);

    // Each a session of its own, so the user counts as flooding; each item takes ItemTime.
    private void X_posts(FairShareScheduler scheduler, params string[] names) => X_posts(scheduler, ItemTime, names);

    // The first item takes firstTakes, the others ItemTime.
    private void X_posts(FairShareScheduler scheduler, TimeSpan firstTakes, params string[] names)
    {
        for (var i = 0; i < names.Length; i++)
        {
            var (name, takes) = (names[i], i == 0 ? firstTakes : ItemTime);
            scheduler.ContextFor(X).Post(_ =>
            {
                _ran.Add(name);
                _clock.Advance(takes);
            }, null);
        }
    }

    private void RunPumps()
    {
        while (_pumps.TryDequeue(out var pump))
        {
            pump();
        }
    }

    /// <summary>Stepped timestamps, and timers that fire (on the test's thread) when the test moves the clock past them.</summary>
    private sealed class PacingClock : TimeProvider
    {
        private readonly List<ManualTimer> _timers = [];
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by)
        {
            _ticks += by.Ticks;
            foreach (var timer in _timers.ToArray())
            {
                timer.FireIfDue(_ticks);
            }
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = new ManualTimer(this, callback, state);
            _timers.Add(timer);
            timer.Change(dueTime, period);
            return timer;
        }

        private sealed class ManualTimer(PacingClock clock, TimerCallback callback, object? state) : ITimer
        {
            private long _due = -1;

            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                _due = dueTime == Timeout.InfiniteTimeSpan ? -1 : clock._ticks + dueTime.Ticks;
                return true;
            }

            public void FireIfDue(long now)
            {
                if (_due >= 0 && now >= _due)
                {
                    _due = -1;
                    callback(state);
                }
            }

            public void Dispose() => _due = -1;

            public ValueTask DisposeAsync()
            {
                Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }
}
