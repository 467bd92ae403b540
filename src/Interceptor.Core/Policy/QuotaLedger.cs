using Interceptor.Core.Options;

namespace Interceptor.Core.Policy;

/// <summary>A quota that would be exceeded: which one, what it counted and the limit.</summary>
public sealed record QuotaExceeded(RefusalKind Kind, int Count, int Limit);

/// <summary>
/// Sliding-window usage per UID: what really left (messages and recipients the upstream accepted in the
/// last hour and day) plus what is in flight (reserved at MAIL and RCPT, released when the upstream refuses).
/// Check-and-reserve is atomic, so concurrent sessions of one user cannot overshoot a limit together.
/// </summary>
public sealed class QuotaLedger(TimeProvider time)
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly TimeSpan Day = QuotaHistory.Window;
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, UserUsage> _users = [];

    /// <summary>Adds a delivery that happened at <paramref name="at"/> (from the store at start, or just now).</summary>
    public void AddDelivered(uint uid, DateTimeOffset at, int recipients)
    {
        lock (_lock)
        {
            UsageOf(uid).Add(at, recipients);
        }
    }

    public bool TryOpenConnection(uint uid, QuotaLimits limits, out QuotaExceeded? exceeded)
    {
        lock (_lock)
        {
            var usage = UsageOf(uid);
            var limit = limits.Connections!.Value;
            if (usage.Connections >= limit)
            {
                exceeded = new QuotaExceeded(RefusalKind.Connections, usage.Connections, limit);
                return false;
            }

            usage.Connections++;
            exceeded = null;
            return true;
        }
    }

    public void CloseConnection(uint uid)
    {
        lock (_lock)
        {
            UsageOf(uid).Connections--;
        }
    }

    /// <summary>Reserves one message if the hourly and daily message quotas allow it.</summary>
    public bool TryReserveMessage(uint uid, QuotaLimits limits, out QuotaExceeded? exceeded)
    {
        lock (_lock)
        {
            var usage = UsageOf(uid);
            var (hourMessages, dayMessages, _, _) = Count(usage);
            exceeded = Exceeds(RefusalKind.MessagesPerHour, hourMessages + usage.ReservedMessages, limits.MessagesPerHour!.Value)
                ?? Exceeds(RefusalKind.MessagesPerDay, dayMessages + usage.ReservedMessages, limits.MessagesPerDay!.Value);
            if (exceeded is null)
            {
                usage.ReservedMessages++;
            }

            return exceeded is null;
        }
    }

    /// <summary>Reserves one recipient if the hourly and daily recipient quotas allow it.</summary>
    public bool TryReserveRecipient(uint uid, QuotaLimits limits, out QuotaExceeded? exceeded)
    {
        lock (_lock)
        {
            var usage = UsageOf(uid);
            var (_, _, hourRecipients, dayRecipients) = Count(usage);
            exceeded = Exceeds(RefusalKind.RecipientsPerHour, hourRecipients + usage.ReservedRecipients, limits.RecipientsPerHour!.Value)
                ?? Exceeds(RefusalKind.RecipientsPerDay, dayRecipients + usage.ReservedRecipients, limits.RecipientsPerDay!.Value);
            if (exceeded is null)
            {
                usage.ReservedRecipients++;
            }

            return exceeded is null;
        }
    }

    /// <summary>Gives back reservations; when <paramref name="delivered"/>, the message and its recipients become usage.</summary>
    public void Settle(uint uid, int reservedMessages, int reservedRecipients, bool delivered, int deliveredRecipients)
    {
        lock (_lock)
        {
            var usage = UsageOf(uid);
            usage.ReservedMessages -= reservedMessages;
            usage.ReservedRecipients -= reservedRecipients;
            if (delivered)
            {
                usage.Add(time.GetUtcNow(), deliveredRecipients);
            }
        }
    }

    /// <summary>Delivered messages and recipients of the last hour and day (reservations excluded).</summary>
    public (int MessagesHour, int MessagesDay, int RecipientsHour, int RecipientsDay) Usage(uint uid)
    {
        lock (_lock)
        {
            return Count(UsageOf(uid));
        }
    }

    public int Connections(uint uid)
    {
        lock (_lock)
        {
            return _users.TryGetValue(uid, out var usage) ? usage.Connections : 0;
        }
    }

    private static QuotaExceeded? Exceeds(RefusalKind kind, int count, int limit) =>
        count >= limit ? new QuotaExceeded(kind, count, limit) : null;

    private (int, int, int, int) Count(UserUsage usage)
    {
        var now = time.GetUtcNow();
        return usage.Count(now - Hour, now - Day);
    }

    private UserUsage UsageOf(uint uid)
    {
        if (!_users.TryGetValue(uid, out var usage))
        {
            usage = new UserUsage();
            _users[uid] = usage;
        }

        return usage;
    }

    /// <summary>
    /// One user's deliveries of the last day in time order, with running totals: a check costs O(1) amortized
    /// however much the user sent (a busy account sends tens of thousands of messages a day, and every MAIL and
    /// RCPT checks the windows), instead of a walk over the whole day.
    /// </summary>
    private sealed class UserUsage
    {
        // Entries before _head have left the day window; the list is compacted when they are the larger half.
        private readonly List<(DateTimeOffset At, int Recipients)> _delivered = [];
        private int _head;
        private int _hourHead;
        private int _dayRecipients;
        private int _hourRecipients;

        // Set when an entry arrived out of order (only while restoring from the store): totals are recomputed once.
        private bool _recount;

        public int ReservedMessages { get; set; }
        public int ReservedRecipients { get; set; }
        public int Connections { get; set; }

        public void Add(DateTimeOffset at, int recipients)
        {
            if (_delivered.Count == _head || _delivered[^1].At <= at)
            {
                _delivered.Add((at, recipients));
                _dayRecipients += recipients;
                _hourRecipients += recipients;
                return;
            }

            // Out of order: keep the list sorted (binary search over the live part) and recount lazily.
            int low = _head, high = _delivered.Count;
            while (low < high)
            {
                var middle = (low + high) / 2;
                if (_delivered[middle].At <= at)
                {
                    low = middle + 1;
                }
                else
                {
                    high = middle;
                }
            }

            _delivered.Insert(low, (at, recipients));
            _recount = true;
        }

        public (int MessagesHour, int MessagesDay, int RecipientsHour, int RecipientsDay) Count(DateTimeOffset hourStart, DateTimeOffset dayStart)
        {
            if (_recount)
            {
                _recount = false;
                _hourHead = _head;
                _dayRecipients = _hourRecipients = 0;
                for (var i = _head; i < _delivered.Count; i++)
                {
                    _dayRecipients += _delivered[i].Recipients;
                }

                _hourRecipients = _dayRecipients;
            }

            // The hour window's start moves first: everything that left the day window left the hour window too.
            while (_hourHead < _delivered.Count && _delivered[_hourHead].At <= hourStart)
            {
                _hourRecipients -= _delivered[_hourHead].Recipients;
                _hourHead++;
            }

            while (_head < _delivered.Count && _delivered[_head].At <= dayStart)
            {
                _dayRecipients -= _delivered[_head].Recipients;
                _head++;
            }

            if (_head > 1024 && _head * 2 > _delivered.Count)
            {
                _delivered.RemoveRange(0, _head);
                _hourHead -= _head;
                _head = 0;
            }

            return (_delivered.Count - _hourHead, _delivered.Count - _head, _hourRecipients, _dayRecipients);
        }
    }
}
