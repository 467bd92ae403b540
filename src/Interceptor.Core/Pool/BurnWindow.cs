namespace Interceptor.Core.Pool;

/// <summary>
/// Counts burn replies per relay (or the host) over a sliding window (<c>Burn.Threshold</c> within
/// <c>Burn.WindowMinutes</c>). Keeps at most <c>threshold</c> times per key and sender: only whether the threshold is
/// reached matters. A key may also need replies from several senders (the host in Auto mode: <c>Burn.HostMinUsers</c>),
/// so that one user's own MX cannot reach the threshold alone.
/// </summary>
public sealed class BurnWindow
{
    private readonly int _threshold;
    private readonly TimeSpan _window;
    private readonly TimeProvider _time;

    // Per key, per sender (the user whose mail drew the reply; 0 when the key does not care who).
    private readonly Dictionary<string, Dictionary<uint, Queue<DateTimeOffset>>> _hits = new(StringComparer.Ordinal);
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
    public bool Record(string key) => Record(key, 0, 1);

    /// <summary>
    /// Counts one burn reply for <paramref name="key"/> drawn by <paramref name="sender"/>'s mail; true when the window now
    /// holds the threshold and replies from at least <paramref name="minSenders"/> senders (never more than the threshold).
    /// </summary>
    public bool Record(string key, uint sender, int minSenders)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minSenders, 1);
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            if (!_hits.TryGetValue(key, out var senders))
            {
                senders = [];
                _hits[key] = senders;
            }

            if (!senders.TryGetValue(sender, out var hits))
            {
                hits = new Queue<DateTimeOffset>(_threshold);
                senders[sender] = hits;
            }

            Expire(hits, now);
            if (hits.Count == _threshold)
            {
                hits.Dequeue();
            }

            hits.Enqueue(now);
            var (total, counted) = Tally(senders, now);
            return total >= _threshold && counted >= Math.Min(minSenders, _threshold);
        }
    }

    /// <summary>Burn replies of <paramref name="key"/> within the window now (at most the threshold per sender).</summary>
    public int Count(string key)
    {
        lock (_lock)
        {
            return _hits.TryGetValue(key, out var senders) ? Tally(senders, _time.GetUtcNow()).Total : 0;
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

    // Replies within the window and how many senders they came from; senders left with none are forgotten.
    private (int Total, int Senders) Tally(Dictionary<uint, Queue<DateTimeOffset>> senders, DateTimeOffset now)
    {
        var (total, counted) = (0, 0);
        foreach (var (sender, hits) in senders)
        {
            Expire(hits, now);
            if (hits.Count == 0)
            {
                senders.Remove(sender);
                continue;
            }

            total += hits.Count;
            counted++;
        }

        return (total, counted);
    }

    private void Expire(Queue<DateTimeOffset> hits, DateTimeOffset now)
    {
        while (hits.Count > 0 && now - hits.Peek() >= _window)
        {
            hits.Dequeue();
        }
    }
}
