namespace Interceptor.Daemon.Fairness;

/// <summary>
/// The share of one core a flooding user's items may take on the scheduler's pumps while other users are served,
/// steered by the CPU pressure (PSI "some": the share of time a runnable task waited for a CPU; the daemon's cgroup's
/// or the machine's, see Linux's CpuPressure). Not
/// thread-safe: the scheduler calls it under a lock of its own.
/// </summary>
/// <remarks>
/// A flood's sessions are in lock-step with the daemon: whatever the daemon does not relay for them, their clients do not
/// send and their upstream does not receive. Pacing the flood's items therefore frees the cores of all three, for the
/// other users' clients, steps and upstreams, where demotion (nice) and the turns only share what the daemon itself
/// runs. The share starts at <see cref="InitialShare"/> when the pressure is first above <c>pressureAbove</c>, shrinks
/// by a quarter a sample while it stays there, and grows by <see cref="Growth"/> a sample while it stays below half of
/// it, until it covers every pump again (no pacing). It never goes below <c>minimumShare</c>, so a paced flood still
/// moves. A gap of more than <see cref="Gap"/> between samples (no flood among others for a while) starts over unpaced.
/// </remarks>
internal sealed class FloodPace
{
    /// <summary>The share a flood is first paced to: half a core.</summary>
    public const double InitialShare = 0.5;

    /// <summary>What the share grows by at a sample below half the threshold.</summary>
    public const double Growth = 0.05;

    /// <summary>Samples further apart than this start over unpaced.</summary>
    public static readonly TimeSpan Gap = TimeSpan.FromSeconds(1);

    private readonly long _frequency;
    private readonly long _minimumSpacing;
    private readonly double _fullShare;
    private readonly double _pressureAbove;
    private readonly double _pressureBelow;
    private long _lastAt;
    private long _lastTotal = -1;

    /// <param name="sampleEvery">How often the scheduler samples; closer samples are ignored.</param>
    /// <param name="frequency">Timestamp ticks a second (of the scheduler's clock).</param>
    /// <param name="concurrency">The scheduler's pumps: a share of all of them paces nothing.</param>
    /// <param name="pressureAbove">The CPU pressure (0–1) over which the share shrinks.</param>
    /// <param name="minimumShare">The share of one core (0–1) a paced flood keeps.</param>
    public FloodPace(TimeSpan sampleEvery, long frequency, int concurrency, double pressureAbove, double minimumShare)
    {
        _frequency = frequency;
        _minimumSpacing = (long)(sampleEvery.TotalSeconds * frequency / 2);
        _fullShare = concurrency;
        MinimumShare = minimumShare;
        _pressureAbove = pressureAbove;
        _pressureBelow = pressureAbove / 2;
    }

    /// <summary>The share of one core a flooding user's items may take; null when not paced.</summary>
    public double? Share { get; private set; }

    /// <summary>The share a paced flood keeps however contended the CPU is.</summary>
    public double MinimumShare { get; }

    /// <summary>The pressure over the last two samples (0–1), or -1 before there were two.</summary>
    public double LastPressure { get; private set; } = -1;

    /// <summary>When the last reading was taken (timestamp ticks).</summary>
    public long LastSampleAt => _lastAt;

    /// <summary>The flood is over (no reading for <see cref="Gap"/>): unpaced, and the next reading starts over. True if it was paced.</summary>
    public bool End()
    {
        var was = Share is not null;
        Share = null;
        LastPressure = -1;
        _lastTotal = -1;
        return was;
    }

    /// <summary>
    /// A reading of the pressure's running total (microseconds) at <paramref name="now"/>; a negative total (unreadable)
    /// ends pacing. Readings closer than half the sampling period are ignored. True when the share changed.
    /// </summary>
    public bool Sample(long now, long totalMicroseconds)
    {
        var before = Share;
        var elapsed = now - _lastAt;
        if (totalMicroseconds < 0 || _lastTotal < 0 || elapsed > (long)(Gap.TotalSeconds * _frequency) || totalMicroseconds < _lastTotal)
        {
            // Unreadable, the first reading, or the first after a quiet while: unpaced until the next says otherwise.
            End();
            _lastTotal = totalMicroseconds;
            _lastAt = now;
            return before != Share;
        }

        if (elapsed < _minimumSpacing)
        {
            return false;
        }

        LastPressure = Math.Min(1, (totalMicroseconds - _lastTotal) / (elapsed * 1_000_000.0 / _frequency));
        _lastTotal = totalMicroseconds;
        _lastAt = now;
        if (LastPressure > _pressureAbove)
        {
            Share = Share is { } share ? Math.Max(MinimumShare, share * 0.75) : Math.Max(MinimumShare, InitialShare);
        }
        else if (LastPressure < _pressureBelow && Share is { } share)
        {
            Share = share + Growth >= _fullShare ? null : share + Growth;
        }

        return before != Share;
    }
}
