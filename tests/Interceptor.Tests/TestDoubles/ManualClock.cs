namespace Interceptor.Tests.TestDoubles;

/// <summary>A clock the test moves by hand, so sliding windows and ages can be tested without waiting.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;

    public override DateTimeOffset GetUtcNow() => Now;

    public void Advance(TimeSpan by) => Now += by;
}
