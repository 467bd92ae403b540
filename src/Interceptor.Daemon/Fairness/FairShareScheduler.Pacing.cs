namespace Interceptor.Daemon.Fairness;

/// <summary>
/// Pacing: while the CPU is contended, a user flooding among others (see <see cref="UserLoad"/>) gets only
/// <see cref="FloodPace.Share"/> of a core a <see cref="PaceWindow"/> (its items' CPU time, blocking work included; what
/// one item spends beyond a window is owed by the next, up to <see cref="PaceMostOwed"/> windows); once it is spent,
/// its items (not blocking work at the head of its turn, which may hold what others wait for) wait for the window's
/// end even with a pump free. The only part of the scheduler that is not work-conserving, and on purpose: the
/// flood's clients and upstream are in lock-step with its items, so an item not run is also their work not done, and
/// the cores go to the other users' clients, steps and upstreams (demotion and the turns only share what the daemon
/// itself runs: run 60 of issue 19, X relaying 2,097 msg/s and the host 95% busy, Y's p99 ×4.6).
/// </summary>
public sealed partial class FairShareScheduler
{
    /// <summary>
    /// The window a paced flood's share is spent over. Short, so that the flood's sessions come back a few at a time
    /// instead of all at once at a long window's start, where they and their clients would take the cores together
    /// (a 100 ms window: CPU pressure 25-35% at a third of a core).
    /// </summary>
    public static readonly TimeSpan PaceWindow = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// The most windows a user's overspend can hold it for (half a second). Items are charged CPU time, so a debt is
    /// work really done; it must cover a burst of blocking work (TLS handshakes, a message's stages), which is charged
    /// but not held: with 10 windows a flood of handshakes started on the pumps threw most of its cost away and took
    /// half a core or more at the 10% floor (attack review of the final read). Below FloodPace.Gap: a user held for a
    /// whole gap takes no sample, and pacing would end.
    /// </summary>
    public const int PaceMostOwed = 50;

    /// <summary>A budget that holds nothing back.</summary>
    private const long Unpaced = long.MaxValue;

    private readonly FloodPace? _pace;
    private readonly long _paceWindowTicks;
    private readonly Func<long>? _readPressure;
    private readonly Func<long>? _threadCpu;
    private readonly Action<uint, double?, double>? _onPaceChanged;
    private readonly object _paceLock = new();
    private long _paceBudget = Unpaced;
    private long _nextPaceSample;
    private uint _lastPacedUid;
    private long _pacedHolds;
    private ITimer? _paceTimer;
    private ITimer? _paceEndTimer;
    private long _paceTimerDue;

    // Held work waits for the window timer (set and cleared under the lock): the scheduler is not idle although nothing
    // may run (IsIdle reads it without the lock).
    private volatile bool _paceTimerArmed;

    /// <summary>Times a flood's items were held until the end of a window (counted once per window and user's hold).</summary>
    public long PacedHolds => Volatile.Read(ref _pacedHolds);

    /// <summary>The current budget as a share of one core, or null when nothing is paced.</summary>
    public double? PacedShare
    {
        get
        {
            lock (_paceLock)
            {
                return _pace?.Share;
            }
        }
    }

    // Whether an item's run time counts against its user's pace (flooding among others, while pacing is on), blocking
    // work included: a TLS handshake or a message's stages are the flood's work too. Under the lock.
    private bool CountsForPace(UserSynchronizationContext context) =>
        _pace is not null && _load.IsFloodingAmongOthers(context.Uid);

    // The calling thread's CPU time in the clock's ticks (the clock's own time if the kernel refused: never on Linux).
    private long ThreadCpuTicks()
    {
        var nanoseconds = _threadCpu!();
        return nanoseconds < 0 ? _time.GetTimestamp() : (long)(nanoseconds * (_time.TimestampFrequency / 1e9));
    }

    // Spends the item's CPU time from its user's pace. Under the lock.
    private void ChargePaced(uint uid, long cpuStarted)
    {
        var budget = Volatile.Read(ref _paceBudget);
        _load.ChargePaced(uid, Math.Max(0, ThreadCpuTicks() - cpuStarted), budget, budget == Unpaced ? Unpaced : budget * PaceMostOwed);
    }

    // The uid spent its pace (until: the end of the window that covers it), and the item is not blocking work: that
    // may hold a lock others wait for (a suspension's nft run holds the suspensions' own). Under the lock.
    private bool IsHeldBack(uint uid, bool blocking, out long until)
    {
        until = 0;
        if (_pace is null || blocking || !_load.IsOverPace(uid, Volatile.Read(ref _paceBudget), out until))
        {
            return false;
        }

        if (_load.NoteHeld(uid, until))
        {
            _pacedHolds++;
        }

        return true;
    }

    // The timers are the scheduler's, not the session's whose Post first needed one: made here, with no execution
    // context to keep (a session's logging scope would otherwise live as long as the process).
    private void CreatePaceTimers()
    {
        using (ExecutionContext.SuppressFlow())
        {
            _paceTimer = _time.CreateTimer(static s => ((FairShareScheduler)s!).PaceWindowEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _paceEndTimer = _time.CreateTimer(static s => ((FairShareScheduler)s!).PaceMaybeEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Reads the pressure once a window, outside the scheduler's lock, on the pump that took a flood's item (so nothing
    /// is read while no flood among others runs); logs a change of the pace through the listener's callback.
    /// </summary>
    private void SamplePressure(uint uid)
    {
        var now = _time.GetTimestamp();
        var next = Volatile.Read(ref _nextPaceSample);
        if (now < next || Interlocked.CompareExchange(ref _nextPaceSample, now + _load.WindowTicks, next) != next)
        {
            return;
        }

        double? before, share;
        double pressure;
        lock (_paceLock)
        {
            before = _pace!.Share;
            _pace.Sample(now, ReadPressure());
            share = _pace.Share;
            pressure = _pace.LastPressure;
            Volatile.Write(ref _paceBudget, share is { } s ? Math.Max(1, (long)(s * _paceWindowTicks)) : Unpaced);
            if (share is not null)
            {
                // Told when the flood is over, not only when the next one starts.
                _lastPacedUid = uid;
                _paceEndTimer!.Change(FloodPace.Gap, Timeout.InfiniteTimeSpan);
            }
        }

        if (share is null && before is not null)
        {
            ReleaseHeld();
        }

        if ((before is null) != (share is null) || (share == _pace.MinimumShare && before != share))
        {
            // Told when pacing starts, reaches its floor, or ends; not at every step in between.
            Tell(uid, share, pressure);
        }
    }

    // A gap since the last sample: no flood among others ran an item for that long, so pacing is over.
    private void PaceMaybeEnded()
    {
        bool ended;
        lock (_paceLock)
        {
            var quiet = _time.GetTimestamp() - _pace!.LastSampleAt;
            var gap = (long)(FloodPace.Gap.TotalSeconds * _time.TimestampFrequency);
            if (quiet < gap)
            {
                // A system timer may fire a clock tick early: wait for the rest (a sample since then moved it anyway).
                if (_pace.Share is not null)
                {
                    _paceEndTimer!.Change(TimeSpan.FromSeconds((double)(gap - quiet) / _time.TimestampFrequency) + TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan);
                }

                return;
            }

            ended = _pace.End();
            if (ended)
            {
                Volatile.Write(ref _paceBudget, Unpaced);
            }
        }

        if (ended)
        {
            ReleaseHeld();
            Tell(_lastPacedUid, null, -1);
        }
    }

    // Pacing ended: work held for a window's end runs now, not when that window would have ended.
    private void ReleaseHeld()
    {
        lock (_lock)
        {
            if (_paceTimerArmed)
            {
                _paceTimerDue = _time.GetTimestamp();
                _paceTimer!.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void Tell(uint uid, double? share, double pressure)
    {
        try
        {
            _onPaceChanged?.Invoke(uid, share, pressure);
        }
#pragma warning disable CA1031 // the log must not take the pump (or the timer) with it
        catch (Exception e)
#pragma warning restore CA1031
        {
            ReportFault(e);
        }
    }

    private long ReadPressure()
    {
        try
        {
            return _readPressure!();
        }
#pragma warning disable CA1031 // an unreadable pressure ends pacing (FloodPace), it does not stop the pump
        catch (Exception e)
#pragma warning restore CA1031
        {
            ReportFault(e);
            return -1;
        }
    }

    // Under the lock: held-back work waits and no pump will take it before the window ends; one timer starts a pump then.
    private void ArmPaceTimer(long until)
    {
        if (_paceTimerArmed && _paceTimerDue <= until)
        {
            return;
        }

        _paceTimerArmed = true;
        _paceTimerDue = until;
        StartPaceTimer(until);
    }

    // Whole milliseconds, rounded up and one more: the system's timers truncate, and may fire a clock tick early.
    private void StartPaceTimer(long until)
    {
        var ticks = Math.Max(0, until - _time.GetTimestamp());
        var milliseconds = (ticks * 1000 + _time.TimestampFrequency - 1) / _time.TimestampFrequency + 1;
        _paceTimer!.Change(TimeSpan.FromMilliseconds(milliseconds), Timeout.InfiniteTimeSpan);
    }

    private void PaceWindowEnded()
    {
        var start = false;
        lock (_lock)
        {
            if (_time.GetTimestamp() < _paceTimerDue)
            {
                // Early after all: wait again, starting no pump that would only find the work still held.
                StartPaceTimer(_paceTimerDue);
                return;
            }

            _paceTimerArmed = false;
            if (_turns.Count > 0 && _running < Concurrency)
            {
                _running++;
                start = true;
            }
        }

        if (start)
        {
            _startPump(Pump);
        }
    }
}
