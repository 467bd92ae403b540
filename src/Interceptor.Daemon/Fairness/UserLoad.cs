using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Interceptor.Daemon.Fairness;

/// <summary>
/// Which users the <see cref="FairShareScheduler"/> sees crowding it: how many items each has in it (queued or running),
/// whether it had two at once within the last <c>crowdedFor</c>, and whether other users' items were seen within
/// <c>othersServedFor</c>. Not thread-safe: the scheduler calls it under its lock.
/// </summary>
internal sealed class UserLoad
{
    private const uint NoUid = uint.MaxValue; // (uid_t)-1, never a user

    private readonly TimeProvider _time;
    private readonly long _crowdedTicks;
    private readonly long _othersServedTicks;

    // Per uid with an item in the scheduler or crowded lately. Removed when it has none and is not crowded; a struct
    // changed in place, so nothing is allocated per item.
    private readonly Dictionary<uint, Entry> _entries = [];
    private long _nextPrune;

    // The uid of the last item to enter, and when the entering uid last changed.
    private uint _lastEntered = NoUid;
    private long _usersAlternatedAt = long.MinValue / 2;

    public UserLoad(TimeProvider time, TimeSpan crowdedFor, TimeSpan othersServedFor)
    {
        _time = time;
        _crowdedTicks = (long)(crowdedFor.TotalSeconds * time.TimestampFrequency);
        _othersServedTicks = (long)(othersServedFor.TotalSeconds * time.TimestampFrequency);
    }

    /// <summary>Uids tracked now (with items, or crowded lately).</summary>
    public int Tracked => _entries.Count;

    /// <summary>An item of the uid is queued or starts running; a second one at once makes the uid crowded.</summary>
    public void Enter(uint uid)
    {
        if (uid != _lastEntered)
        {
            if (_lastEntered != NoUid)
            {
                _usersAlternatedAt = _time.GetTimestamp();
            }

            _lastEntered = uid;
        }

        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out _);
        if (++entry.Items >= 2)
        {
            entry.CrowdedUntil = _time.GetTimestamp() + _crowdedTicks;
        }
    }

    /// <summary>
    /// An item of the uid has run. Its entry goes once nothing of the uid is left and it is no longer crowded; entries of
    /// crowded uids that went quiet are pruned at most once per crowded period.
    /// </summary>
    public void Leave(uint uid)
    {
        ref var entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, uid);
        if (Unsafe.IsNullRef(ref entry) || --entry.Items > 0)
        {
            return;
        }

        var now = _time.GetTimestamp();
        if (now >= entry.CrowdedUntil)
        {
            _entries.Remove(uid);
        }

        if (now >= _nextPrune)
        {
            _nextPrune = now + _crowdedTicks;
            foreach (var (key, value) in _entries)
            {
                if (value.Items == 0 && now >= value.CrowdedUntil)
                {
                    _entries.Remove(key);
                }
            }
        }
    }

    /// <summary>Nothing of the uid queued or running, and no pile-up lately: one step at a time.</summary>
    public bool IsLight(uint uid) =>
        !_entries.TryGetValue(uid, out var entry) || (entry.Items == 0 && _time.GetTimestamp() >= entry.CrowdedUntil);

    /// <summary>Crowded lately, while another user's items were seen within the served period.</summary>
    public bool IsCrowdedAmongOthers(uint uid)
    {
        if (!_entries.TryGetValue(uid, out var entry))
        {
            return false;
        }

        var now = _time.GetTimestamp();
        return now < entry.CrowdedUntil && now < _usersAlternatedAt + _othersServedTicks;
    }

    private struct Entry
    {
        public int Items;
        public long CrowdedUntil;
    }
}
