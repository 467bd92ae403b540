namespace Interceptor.Daemon.Pool;

/// <summary>
/// Messages each relay carried in the last hour, for <c>relays</c> and the metrics: one count per minute and relay, so
/// memory stays at 60 numbers per relay however much mail passes (the hour is exact to the minute).
/// </summary>
public sealed class RelayHourCounter(TimeProvider time)
{
    private const int Buckets = 60;
    private readonly Dictionary<string, (long Minute, int Count)[]> _relays = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _lock = new();

    public void Add(string relay)
    {
        var minute = Minute();
        lock (_lock)
        {
            if (!_relays.TryGetValue(relay, out var buckets))
            {
                buckets = new (long, int)[Buckets];
                _relays[relay] = buckets;
            }

            ref var bucket = ref buckets[minute % Buckets];
            bucket = bucket.Minute == minute ? (minute, bucket.Count + 1) : (minute, 1);
        }
    }

    /// <summary>Messages of the last 60 minutes, this one included.</summary>
    public long LastHour(string relay)
    {
        var minute = Minute();
        lock (_lock)
        {
            return _relays.TryGetValue(relay, out var buckets)
                ? buckets.Where(b => b.Count > 0 && minute - b.Minute < Buckets).Sum(b => (long)b.Count)
                : 0;
        }
    }

    private long Minute() => time.GetUtcNow().ToUnixTimeSeconds() / 60;
}
