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
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, UserUsage> _users = [];

    /// <summary>Adds a delivery that happened at <paramref name="at"/> (from the store at start, or just now).</summary>
    public void AddDelivered(uint uid, DateTimeOffset at, int recipients)
    {
        lock (_lock)
        {
            var usage = UsageOf(uid);
            usage.Delivered.Add((at, recipients));
            if (usage.Delivered.Count > 1 && usage.Delivered[^2].At > at)
            {
                usage.Delivered.Sort((a, b) => a.At.CompareTo(b.At));
            }
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
                usage.Delivered.Add((time.GetUtcNow(), deliveredRecipients));
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
        var dayStart = now - Day;
        var hourStart = now - Hour;

        // Entries are in time order: drop what left the day window, then count from the newest backwards.
        var expired = 0;
        while (expired < usage.Delivered.Count && usage.Delivered[expired].At <= dayStart)
        {
            expired++;
        }

        usage.Delivered.RemoveRange(0, expired);
        int hourMessages = 0, hourRecipients = 0, dayRecipients = 0;
        for (var i = usage.Delivered.Count - 1; i >= 0; i--)
        {
            var (at, recipients) = usage.Delivered[i];
            dayRecipients += recipients;
            if (at > hourStart)
            {
                hourMessages++;
                hourRecipients += recipients;
            }
        }

        return (hourMessages, usage.Delivered.Count, hourRecipients, dayRecipients);
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

    private sealed class UserUsage
    {
        public List<(DateTimeOffset At, int Recipients)> Delivered { get; } = [];
        public int ReservedMessages { get; set; }
        public int ReservedRecipients { get; set; }
        public int Connections { get; set; }
    }
}
