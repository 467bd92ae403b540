namespace Interceptor.Tests.TestDoubles;

/// <summary>
/// Timestamps the test moves by hand (GetTimestamp, GetElapsedTime): what a slice, a budget or a window is measured
/// with, so a loaded machine's scheduler cannot move them. Safe to read from another thread.
/// </summary>
internal sealed class SteppedClock : TimeProvider
{
    private long _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
