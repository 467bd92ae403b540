namespace Interceptor.Core.Pool;

/// <summary>
/// Where a burn reply came from, for the host in Auto mode: the user whose mail drew it (the owner's uid) and the
/// destination network that answered (an IPv4 /24 or IPv6 /48, <see cref="NetworkOf"/>).
/// </summary>
public readonly record struct BurnSource(uint User, string Network)
{
    /// <summary>No particular source: every reply counted under one (a key that counts neither users nor networks).</summary>
    public static readonly BurnSource Any = new(0, "");

    /// <summary>The network an MX address belongs to, as far as telling one operator's servers from another's goes.</summary>
    public static string NetworkOf(System.Net.IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var bytes = address.GetAddressBytes();
        return bytes.Length == 4
            ? $"{bytes[0]}.{bytes[1]}.{bytes[2]}.0/24"
            : new System.Net.IPAddress([.. bytes[..6], .. new byte[10]]) + "/48";
    }
}

/// <summary>
/// Counts burn replies per relay (or the host) over a sliding window (<c>Burn.Threshold</c> within
/// <c>Burn.WindowMinutes</c>). Keeps at most <c>threshold</c> times per key and source: only whether the threshold is
/// reached matters. A key may also need several destination networks each to have refused several users' mail (the host
/// in Auto mode: <c>Burn.HostMinNetworks</c> networks, <c>Burn.HostMinUsers</c> users each): one user's own MXs cannot
/// reach the threshold alone, nor can they with one neighbour's mail sent to her domain; she needs another user's mail
/// refused by each of them.
/// </summary>
public sealed class BurnWindow
{
    private readonly int _threshold;
    private readonly TimeSpan _window;
    private readonly TimeProvider _time;

    // Sources kept per key: each costs a refusal drawn by real mail, but a bound keeps memory fixed whatever a user sends.
    private const int MaxSources = 1024;

    // Networks kept per user and key: her own MXs in a thousand networks would otherwise fill MaxSources, and every
    // other user's refusals (a real block) would then go uncounted. Her oldest gives way to her newest.
    private const int MaxSourcesPerUser = 16;

    // Per key, per source (who drew the reply and which network gave it; BurnSource.Any when the key does not care).
    private readonly Dictionary<string, Dictionary<BurnSource, Queue<DateTimeOffset>>> _hits = new(StringComparer.Ordinal);
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
    public bool Record(string key) => Record(key, BurnSource.Any, 1, 1);

    /// <summary>
    /// Counts one burn reply for <paramref name="key"/> from <paramref name="source"/>; true when the window now holds the
    /// threshold, and at least <paramref name="minNetworks"/> networks each refused the mail of at least
    /// <paramref name="minUsers"/> users (neither ever more than the threshold). With <paramref name="shareEach"/>, one
    /// source counts towards the threshold with at most its share, the threshold divided by <paramref name="minUsers"/>
    /// (rounded up): the other users' mail must then draw the rest, not one refusal after hers filled the window.
    /// </summary>
    public bool Record(string key, BurnSource source, int minUsers, int minNetworks, bool shareEach = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minUsers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(minNetworks, 1);
        var kept = shareEach ? (_threshold + Math.Min(minUsers, _threshold) - 1) / Math.Min(minUsers, _threshold) : _threshold;
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            if (!_hits.TryGetValue(key, out var sources))
            {
                sources = [];
                _hits[key] = sources;
            }

            Tally(sources, now); // expires old hits first, so the bound counts live sources only
            if (!sources.TryGetValue(source, out var hits))
            {
                ForgetOldestIfFull(sources, source.User, Math.Max(MaxSourcesPerUser, minNetworks));
                if (sources.Count >= MaxSources)
                {
                    return false;
                }

                hits = new Queue<DateTimeOffset>(kept);
                sources[source] = hits;
            }

            while (hits.Count >= kept)
            {
                hits.Dequeue();
            }

            hits.Enqueue(now);
            return Tally(sources, now) >= _threshold && NetworksSeenByUsers(sources, Math.Min(minUsers, _threshold)) >= Math.Min(minNetworks, _threshold);
        }
    }

    /// <summary>Burn replies of <paramref name="key"/> within the window now (at most the threshold per sender).</summary>
    public int Count(string key)
    {
        lock (_lock)
        {
            return _hits.TryGetValue(key, out var sources) ? Tally(sources, _time.GetUtcNow()) : 0;
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

    // Replies within the window; sources left with none are forgotten.
    private int Tally(Dictionary<BurnSource, Queue<DateTimeOffset>> sources, DateTimeOffset now)
    {
        var total = 0;
        foreach (var (source, hits) in sources)
        {
            Expire(hits, now);
            if (hits.Count == 0)
            {
                sources.Remove(source);
                continue;
            }

            total += hits.Count;
        }

        return total;
    }

    // Networks each of whose replies within the window were drawn by the mail of at least minUsers users. Counting users
    // and networks apart let her own MX's two networks (its IPv4 and IPv6 addresses) and one reply to a neighbour's mail
    // there meet both; now each network needs another user's mail refused by it, as a real block gives every sender.
    private static int NetworksSeenByUsers(Dictionary<BurnSource, Queue<DateTimeOffset>> sources, int minUsers)
    {
        return sources.Keys.GroupBy(s => s.Network, StringComparer.Ordinal).Count(network => network.Select(s => s.User).Distinct().Count() >= minUsers);
    }

    // At least as many networks as the rule needs (HostMinNetworks with HostMinUsers 1: one user's mail may do it).
    private static void ForgetOldestIfFull(Dictionary<BurnSource, Queue<DateTimeOffset>> sources, uint user, int kept)
    {
        var hers = sources.Where(s => s.Key.User == user).ToList();
        if (hers.Count >= kept)
        {
            sources.Remove(hers.MinBy(s => s.Value.Last()).Key);
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
