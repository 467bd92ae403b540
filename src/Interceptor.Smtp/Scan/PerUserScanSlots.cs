namespace Interceptor.Smtp.Scan;

/// <summary>
/// Bounds the scans one user has at the scanner at once (<c>Scan.MaxConcurrentPerUser</c>). The scanner is shared and
/// small (spamd runs five children by default): without a bound, one customer's parallel sessions of content slow to
/// scan would hold every child until <c>Scan.TimeoutSeconds</c>, and every other user's mail would time out behind them.
/// Beyond the bound a scan waits for one of the user's own to finish, within the same timeout.
/// </summary>
internal sealed class PerUserScanSlots(int perUser)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, UserSlots> _users = [];

    public int PerUser => perUser;

    /// <summary>Scans of <paramref name="uid"/> running or waiting (0 once all ended): for tests.</summary>
    public int InUse(uint uid)
    {
        lock (_lock)
        {
            return _users.TryGetValue(uid, out var slots) ? slots.Holders : 0;
        }
    }

    /// <summary>Waits for one of the user's slots; disposing the lease gives it back. Throws when the token is cancelled.</summary>
    public async ValueTask<Lease> EnterAsync(uint uid, CancellationToken token)
    {
        UserSlots slots;
        lock (_lock)
        {
            if (!_users.TryGetValue(uid, out slots!))
            {
                slots = new UserSlots(perUser);
                _users[uid] = slots;
            }

            slots.Holders++;
        }

        try
        {
            await slots.Gate.WaitAsync(token);
        }
        catch
        {
            Leave(uid, slots, acquired: false);
            throw;
        }

        return new Lease(this, uid, slots);
    }

    private void Leave(uint uid, UserSlots slots, bool acquired)
    {
        if (acquired)
        {
            slots.Gate.Release();
        }

        lock (_lock)
        {
            // Users come and go by the thousand: a user with nothing running or waiting leaves no entry behind.
            if (--slots.Holders == 0)
            {
                _users.Remove(uid);
            }
        }
    }

    /// <summary>Counted under the lock: the scans running plus those waiting, so the entry lives while anyone uses it.</summary>
    internal sealed class UserSlots(int perUser)
    {
        public SemaphoreSlim Gate { get; } = new(perUser, perUser);

        public int Holders { get; set; }
    }

    public sealed class Lease : IDisposable
    {
        private PerUserScanSlots? _owner;
        private readonly uint _uid;
        private readonly UserSlots _slots;

        internal Lease(PerUserScanSlots owner, uint uid, UserSlots slots)
        {
            _owner = owner;
            _uid = uid;
            _slots = slots;
        }

        public void Dispose()
        {
            Interlocked.Exchange(ref _owner, null)?.Leave(_uid, _slots, acquired: true);
        }
    }
}
