namespace Interceptor.Core.Pool;

/// <summary>
/// Counts burn replies per relay (or the host) over a sliding window (<c>Burn.Threshold</c> within
/// <c>Burn.WindowMinutes</c>). Keeps at most <c>threshold</c> times per key: only whether the threshold is reached matters.
/// </summary>
public sealed class BurnWindow
{
    private readonly int _threshold;
    private readonly TimeSpan _window;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, Queue<DateTimeOffset>> _hits = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public BurnWindow(int threshold, TimeSpan window, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threshold, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(time);
        _threshold = threshold;
        _window = window;
        _time = time;
    }

    /// <summary>Counts one burn reply for <paramref name="key"/> now; true when the window now holds the threshold.</summary>
    public bool Record(string key)
    {
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            if (!_hits.TryGetValue(key, out var hits))
            {
                hits = new Queue<DateTimeOffset>(_threshold);
                _hits[key] = hits;
            }

            Expire(hits, now);
            if (hits.Count == _threshold)
            {
                hits.Dequeue();
            }

            hits.Enqueue(now);
            return hits.Count >= _threshold;
        }
    }

    /// <summary>Burn replies of <paramref name="key"/> within the window now (at most the threshold).</summary>
    public int Count(string key)
    {
        lock (_lock)
        {
            if (!_hits.TryGetValue(key, out var hits))
            {
                return 0;
            }

            Expire(hits, _time.GetUtcNow());
            return hits.Count;
        }
    }

    /// <summary>Forgets <paramref name="key"/>'s replies (it was burned, or restored: a new count starts).</summary>
    public void Reset(string key)
    {
        lock (_lock)
        {
            _hits.Remove(key);
        }
    }

    private void Expire(Queue<DateTimeOffset> hits, DateTimeOffset now)
    {
        while (hits.Count > 0 && now - hits.Peek() >= _window)
        {
            hits.Dequeue();
        }
    }
}
