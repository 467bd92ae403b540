namespace Interceptor.Daemon.Fairness;

/// <summary>What the scheduler paces a flood among others by (see FairShareScheduler.Pacing).</summary>
/// <param name="PressureAbove">The CPU pressure (0–1) above which a flood's share shrinks.</param>
/// <param name="MinimumShare">The share of one core (0–1) a paced flood keeps.</param>
/// <param name="ReadPressure">The pressure's running total in microseconds; negative when unreadable.</param>
/// <param name="ThreadCpuNanoseconds">The calling thread's CPU time: what an item is charged (not its wall time, which
/// counts preemption at the flood's nice value, disk and lock waits and GC pauses); negative when unreadable.</param>
public sealed record PaceSettings(double PressureAbove, double MinimumShare, Func<long> ReadPressure, Func<long> ThreadCpuNanoseconds);
