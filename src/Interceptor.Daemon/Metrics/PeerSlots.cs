namespace Interceptor.Daemon.Metrics;

/// <summary>
/// The metrics endpoint's connection slots, shared out by whose process connected. The endpoint is on loopback, so any
/// local user can connect; with one cap for everyone, a customer's site that kept reconnecting held every slot and
/// the provider's scraper found none (each connection lives at most <see cref="MetricsEndpoint.ConnectionLifetime"/>,
/// but the next one is hers as soon as a slot is free). So each owner (a uid, its sub-UIDs counted as their owner's) may
/// hold at most <see cref="PerOwner"/>; connections whose owner could not be found share one such allowance; and
/// <see cref="KeptForScrapers"/> slots are never taken by anyone but the scraper's users. Since the daemon's table lets
/// only root and Metrics.ScraperUsers reach the endpoint, the shares and the kept slots matter between several scraper
/// users (a second agent, a forwarder) and in the moments a flushed table takes to come back; they were written when
/// every local user's connection reached the endpoint.
/// </summary>
internal sealed class PeerSlots
{
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, int> _held = [];
    private int _total;
    private int _others;

    public PeerSlots(int capacity, int perOwner, int keptForScrapers = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(perOwner);
        ArgumentOutOfRangeException.ThrowIfNegative(keptForScrapers);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(keptForScrapers, capacity);
        (Capacity, PerOwner, KeptForScrapers) = (capacity, perOwner, keptForScrapers);
    }

    public int Capacity { get; }

    public int PerOwner { get; }

    public int KeptForScrapers { get; }

    public int InUse
    {
        get
        {
            lock (_lock)
            {
                return _total;
            }
        }
    }

    /// <summary>
    /// A slot for a connection of <paramref name="owner"/> (null: not found; <paramref name="unlimited"/>: the endpoint
    /// does not look owners up, so only the cap applies; <paramref name="scraper"/>: one of the scraper's users, who may
    /// take the kept slots), or null with why not.
    /// </summary>
    public Slot? TryTake(uint? owner, bool unlimited, bool scraper, out PeerRefusal refusal)
    {
        // uint.MaxValue is (uid_t)-1, which no process runs as: the key of the owners not found.
        var key = owner ?? uint.MaxValue;
        var other = !unlimited && !scraper;
        lock (_lock)
        {
            if (_total >= Capacity || (other && _others >= Capacity - KeptForScrapers))
            {
                refusal = PeerRefusal.Full;
                return null;
            }

            var held = _held.GetValueOrDefault(key);
            if (!unlimited && held >= PerOwner)
            {
                refusal = PeerRefusal.OwnerFull;
                return null;
            }

            _held[key] = held + 1;
            _total++;
            _others += other ? 1 : 0;
        }

        refusal = PeerRefusal.None;
        return new Slot(this, key, other);
    }

    private void Return(uint key, bool other)
    {
        lock (_lock)
        {
            var held = _held[key] - 1;
            if (held == 0)
            {
                _held.Remove(key);
            }
            else
            {
                _held[key] = held;
            }

            _total--;
            _others -= other ? 1 : 0;
        }
    }

    /// <summary>One connection's slot; disposing it gives it back, once.</summary>
    public sealed class Slot(PeerSlots slots, uint key, bool other) : IDisposable
    {
        private int _returned;

        /// <summary>The uid of the connection's owner, null when it was not found.</summary>
        public uint? Owner => key == uint.MaxValue ? null : key;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0)
            {
                slots.Return(key, other);
            }
        }
    }
}

/// <summary>Why <see cref="PeerSlots.TryTake"/> gave no slot.</summary>
internal enum PeerRefusal
{
    None,

    /// <summary>Every slot is held, or every slot but those kept for the scraper.</summary>
    Full,

    /// <summary>The connection's owner holds her share already.</summary>
    OwnerFull,
}
