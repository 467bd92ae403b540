namespace Interceptor.Daemon.Fairness;

/// <summary>
/// Pacing: while the machine's CPU is contended, a user flooding among others (see <see cref="UserLoad"/>) gets only
/// <see cref="FloodPace.Share"/> of pump time a <see cref="PaceWindow"/>; once it is spent, its items wait for the
/// window's end even with a pump free. The only part of the scheduler that is not work-conserving, and on purpose: the
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

    /// <summary>A budget that holds nothing back.</summary>
    private const long Unpaced = long.MaxValue;

    private readonly FloodPace? _pace;
    private readonly long _paceWindowTicks;
    private readonly Func<long>? _readPressure;
    private readonly Action<uint, double?, double>? _onPaceChanged;
    private readonly object _paceLock = new();
    private long _paceBudget = Unpaced;
    private long _nextPaceSample;
    private uint _lastPacedUid;
    private long _pacedHolds;
    private ITimer? _paceTimer;
    private ITimer? _paceEndTimer;
    private bool _paceTimerArmed;

    // Items wait for a window's end with no pump running: the scheduler is not idle although nothing runs.
    private volatile bool _pacedWaiting;

    /// <summary>Whether a flood among others can be paced (a pressure reader was given and pacing is on).</summary>
    public bool Paces => _pace is not null;

    /// <summary>Times a flood's items were held for a window's end (a pump found nothing else, or one was queued).</summary>
    public long PacedHolds => Interlocked.Read(ref _pacedHolds);

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

    // Whether a pump's item counts against its user's pace (flooding among others, while pacing is on). Under the lock.
    private bool CountsForPace(UserSynchronizationContext context) =>
        _pace is not null && !context.InBlockingWork && _load.IsFloodingAmongOthers(context.Uid);

    // The uid spent its budget in its current window (until: the window's end). Under the lock.
    private bool IsHeldBack(uint uid, out long until)
    {
        until = 0;
        return _pace is not null && _load.IsOverPace(uid, Volatile.Read(ref _paceBudget), out until);
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

        bool changed;
        double? share;
        double pressure;
        lock (_paceLock)
        {
            changed = _pace!.Sample(now, ReadPressure());
            share = _pace.Share;
            pressure = _pace.LastPressure;
            Volatile.Write(ref _paceBudget, share is { } s ? (long)(s * _paceWindowTicks) : Unpaced);
            if (share is not null)
            {
                // Told when the flood is over, not only when the next one starts.
                _paceEndTimer ??= _time.CreateTimer(static s => ((FairShareScheduler)s!).PaceMaybeEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _paceEndTimer.Change(FloodPace.Gap, Timeout.InfiniteTimeSpan);
            }
        }

        if (share is not null)
        {
            _lastPacedUid = uid;
        }

        if (changed && (share is null || share == FloodPace.InitialShare || share == _pace.MinimumShare))
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
            ended = _time.GetTimestamp() - _pace!.LastSampleAt >= (long)(FloodPace.Gap.TotalSeconds * _time.TimestampFrequency) && _pace.End();
            if (ended)
            {
                Volatile.Write(ref _paceBudget, Unpaced);
            }
        }

        if (ended)
        {
            Tell(_lastPacedUid, null, -1);
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
        _pacedWaiting = true;
        if (_paceTimerArmed)
        {
            return;
        }

        _paceTimerArmed = true;
        Interlocked.Increment(ref _pacedHolds);
        var delay = TimeSpan.FromSeconds(Math.Max(0, until - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
        _paceTimer ??= _time.CreateTimer(static s => ((FairShareScheduler)s!).PaceWindowEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _paceTimer.Change(delay, Timeout.InfiniteTimeSpan);
    }

    private void PaceWindowEnded()
    {
        var start = false;
        lock (_lock)
        {
            _paceTimerArmed = false;
            _pacedWaiting = false;
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
