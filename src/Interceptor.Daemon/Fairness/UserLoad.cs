using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Interceptor.Daemon.Fairness;

/// <summary>
/// What the <see cref="FairShareScheduler"/> knows of each user's load, counted in sessions (a session's own
/// hand-offs, such as a yield from inside its step, are one session): how many of the user's sessions have work in the
/// scheduler now, how many entered it in the current window, and whether other users were seen lately. Not
/// thread-safe: the scheduler calls it under its lock.
/// </summary>
/// <remarks>
/// Busy (not light): two sessions at once, or more than <c>lightEntries</c> entries in one window (a user whose
/// sessions take turns on one socket thread never has two at once, but is no lighter for it). Flooding (demoted while
/// others are served): <c>floodSessionsAnyway</c> sessions at once, or <c>floodSessions</c> while no other user has more.
/// Slicing (never alone): <c>slicesToMark</c> slices used up by its sessions in one window. The marks last a window after
/// they were last earned; the flood mark is earned again whenever it is asked for while the sessions are still there.
/// </remarks>
internal sealed class UserLoad
{
    private const uint NoUid = uint.MaxValue; // (uid_t)-1, never a user

    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly long _othersServedTicks;
    private readonly int _lightEntries;
    private readonly int _floodSessions;
    private readonly int _floodSessionsAnyway;
    private readonly int _slicesToMark;
    private readonly long _paceWindowTicks;

    // Per uid with work in the scheduler or a mark or window still running. Removed when none of these holds; a struct
    // changed in place, so nothing is allocated per item.
    private readonly Dictionary<uint, Entry> _entries = [];
    private long _nextPrune;

    // The uid that entered last, and when the entering uid last changed.
    private uint _lastEntered = NoUid;
    private long _usersAlternatedAt = long.MinValue / 2;

    // Uids with a session's work in the scheduler now.
    private int _usersWithWork;

    public UserLoad(TimeProvider time, TimeSpan window, TimeSpan othersServedFor, int lightEntries, int floodSessions, int floodSessionsAnyway, int slicesToMark, TimeSpan paceWindow)
    {
        _paceWindowTicks = (long)(paceWindow.TotalSeconds * time.TimestampFrequency);
        _time = time;
        _windowTicks = (long)(window.TotalSeconds * time.TimestampFrequency);
        _othersServedTicks = (long)(othersServedFor.TotalSeconds * time.TimestampFrequency);
        _lightEntries = lightEntries;
        _floodSessions = floodSessions;
        _floodSessionsAnyway = floodSessionsAnyway;
        _slicesToMark = slicesToMark;
    }

    /// <summary>The window's length in timestamp ticks.</summary>
    public long WindowTicks => _windowTicks;

    /// <summary>Uids tracked now.</summary>
    public int Tracked => _entries.Count;

    /// <summary>A session of the uid has work in the scheduler now (it had none).</summary>
    public void Enter(uint uid)
    {
        var now = _time.GetTimestamp();
        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out var existed);

        // Other users were seen: this uid's work entering after another uid's, or while another uid has work in the
        // scheduler (a flood whose sessions keep yielding never enters again, so without this its neighbour's entries
        // would stop counting a second after the flood's last one).
        if (uid != _lastEntered)
        {
            if (_lastEntered != NoUid)
            {
                _usersAlternatedAt = now;
            }

            _lastEntered = uid;
        }
        else if (OthersHaveWork(entry.Sessions))
        {
            _usersAlternatedAt = now;
        }

        if (!existed || now >= entry.WindowStart + _windowTicks)
        {
            entry.WindowStart = now;
            entry.WindowEntries = 0;
        }

        entry.WindowEntries++;
        if (entry.Sessions++ == 0)
        {
            _usersWithWork++;
        }
        if (entry.Sessions >= 2 || entry.WindowEntries > _lightEntries)
        {
            entry.BusyUntil = now + _windowTicks;
        }

        if (IsFloodSized(uid, entry.Sessions))
        {
            entry.FloodingUntil = now + _windowTicks;
        }
    }

    // A flood queues the sessions of everyone it competes with, so a neighbour's few parallel senders reach floodSessions
    // too (third attack review of pacing): between floodSessions and floodSessionsAnyway a uid floods only while no other
    // uid has more sessions waiting (two floods of a size both do). From floodSessionsAnyway on it floods whatever else
    // waits, so a flood cannot hide behind a bigger one (attack review of the first version, which compared with the
    // others' mean: a mean that light users pull down, and a flood of 20 hidden behind one of 100).
    private bool IsFloodSized(uint uid, int sessions)
    {
        if (sessions < _floodSessions)
        {
            return false;
        }

        if (sessions >= _floodSessionsAnyway)
        {
            return true;
        }

        foreach (var (other, entry) in _entries)
        {
            if (entry.Sessions > sessions && other != uid)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A session of the uid has no more work in the scheduler.</summary>
    public void Leave(uint uid)
    {
        ref var entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, uid);
        if (Unsafe.IsNullRef(ref entry) || --entry.Sessions > 0)
        {
            return;
        }

        _usersWithWork--;

        var now = _time.GetTimestamp();
        if (IsSpent(entry, now))
        {
            _entries.Remove(uid);
        }

        if (now >= _nextPrune)
        {
            _nextPrune = now + _windowTicks;
            foreach (var (key, value) in _entries)
            {
                if (IsSpent(value, now))
                {
                    _entries.Remove(key);
                }
            }
        }
    }

    /// <summary>No session of the uid has work in the scheduler, and it was not busy lately: one step at a time.</summary>
    public bool IsLight(uint uid)
    {
        if (!_entries.TryGetValue(uid, out var entry))
        {
            return true;
        }

        var now = _time.GetTimestamp();
        return entry.Sessions == 0 && now >= entry.BusyUntil && (now >= entry.WindowStart + _windowTicks || entry.WindowEntries < _lightEntries);
    }

    /// <summary>
    /// Flooding lately or now, while another user's work was seen within the served period. Now counts as well as lately:
    /// sessions that keep yielding stay in the scheduler and never enter again, so their mark would lapse a window after
    /// the last one entered while the flood goes on; it is renewed here instead.
    /// </summary>
    public bool IsFloodingAmongOthers(uint uid)
    {
        ref var entry = ref CollectionsMarshal.GetValueRefOrNullRef(_entries, uid);
        if (Unsafe.IsNullRef(ref entry))
        {
            return false;
        }

        // Others: served within the period, or with work in the scheduler now (a neighbour's session that keeps yielding
        // enters no more than the flood's do, and its wait is what the mark is for).
        var now = _time.GetTimestamp();
        if (now >= _usersAlternatedAt + _othersServedTicks && !OthersHaveWork(entry.Sessions))
        {
            return false;
        }

        if (now < entry.FloodingUntil)
        {
            return true;
        }

        // The scan of the other users runs only for 4-15 sessions behind a bigger flood: over the users with work lately.
        if (!IsFloodSized(uid, entry.Sessions))
        {
            return false;
        }

        entry.FloodingUntil = now + _windowTicks;
        return true;
    }

    /// <summary>
    /// The uid's work entered last, no other uid's for <paramref name="period"/> (or ever), and no other uid has work in
    /// the scheduler now (a session that keeps yielding never leaves it, so never enters again): the only user with work.
    /// </summary>
    public bool IsAlone(uint uid, TimeSpan period)
    {
        if (uid != _lastEntered || _time.GetTimestamp() - _usersAlternatedAt < (long)(period.TotalSeconds * _time.TimestampFrequency))
        {
            return false;
        }

        return !OthersHaveWork(_entries.TryGetValue(uid, out var own) ? own.Sessions : 0);
    }

    // Another uid than the one with ownSessions in the scheduler has work there now.
    private bool OthersHaveWork(int ownSessions) => _usersWithWork > (ownSessions > 0 ? 1 : 0);

    /// <summary>A loop of one of the uid's sessions used up its slice outside the scheduler.</summary>
    public void SliceUsed(uint uid)
    {
        var now = _time.GetTimestamp();
        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out var existed);
        if (!existed || now >= entry.SliceWindowStart + _windowTicks)
        {
            entry.SliceWindowStart = now;
            entry.WindowSlices = 0;
        }

        if (++entry.WindowSlices >= _slicesToMark)
        {
            entry.SlicingUntil = now + _windowTicks;
        }
    }

    /// <summary>Its sessions used up <c>slicesToMark</c> slices in one window, within the last window.</summary>
    public bool IsSlicing(uint uid) => _entries.TryGetValue(uid, out var entry) && _time.GetTimestamp() < entry.SlicingUntil;

    /// <summary>
    /// Whether a step of the user may be kept for the store's writer now (FairShareScheduler.TryRunHere), and if so
    /// counts it: one a window. A step runs up to a slice there while every other user's next commit waits, so a customer
    /// who stays light (up to LightStepsPerWindow steps a window) cannot take more of the writer than a slice a window.
    /// </summary>
    public bool TryKeepFor(uint uid)
    {
        var now = _time.GetTimestamp();
        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out _);
        if (now < entry.KeptUntil)
        {
            return false;
        }

        entry.KeptUntil = now + _windowTicks;
        return true;
    }

    /// <summary>
    /// A kept step that began at <paramref name="started"/> has ended. One that ran past <see cref="KeptOverrun"/> (a few
    /// slices: a path no ThreadBudget counts, such as a long regex or a blocking file call, attack review of the kept step)
    /// keeps the user's steps off the writer for <see cref="KeptPenalty"/>, so such a path costs the writer one overrun
    /// per user in that time instead of one a window.
    /// </summary>
    public void KeptStepTook(uint uid, long started)
    {
        var now = _time.GetTimestamp();
        if (now - started <= (long)(KeptOverrun.TotalSeconds * _time.TimestampFrequency))
        {
            return;
        }

        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out _);
        entry.KeptUntil = now + (long)(KeptPenalty.TotalSeconds * _time.TimestampFrequency);
    }

    /// <summary>
    /// An item of the uid, flooding among others, ran for <paramref name="ticks"/> (FairShareScheduler.Pacing): spent
    /// from its pace, <paramref name="budget"/> a pace window. What an item spent beyond its window's budget is owed by
    /// the next windows, so a long item costs its user as many windows as it took, not one; never more than
    /// <paramref name="mostOwed"/> in all.
    /// </summary>
    public void ChargePaced(uint uid, long ticks, long budget, long mostOwed)
    {
        var now = _time.GetTimestamp();
        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out var existed);
        var windows = existed ? (now - entry.PaceWindowStart) / _paceWindowTicks : 0;
        if (!existed || budget == long.MaxValue || (windows > 0 && windows > entry.PaceUsed / budget))
        {
            // Nothing owed any more (or nothing paced): a fresh start.
            entry.PaceWindowStart = now;
            entry.PaceUsed = 0;
        }
        else if (windows > 0)
        {
            entry.PaceWindowStart += windows * _paceWindowTicks;
            entry.PaceUsed -= windows * budget;
        }

        entry.PaceUsed = Math.Min(entry.PaceUsed + ticks, mostOwed);
    }

    /// <summary>The uid is held until <paramref name="until"/>: true the first time for that window (a hold to count).</summary>
    public bool NoteHeld(uint uid, long until)
    {
        ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, uid, out _);
        if (entry.HeldUntil == until)
        {
            return false;
        }

        entry.HeldUntil = until;
        return true;
    }

    /// <summary>
    /// The uid spent its pace: everything <paramref name="budget"/> a window allowed since its windows began, the
    /// current one's included. <paramref name="until"/>: the end of the window by which its spending is covered.
    /// </summary>
    public bool IsOverPace(uint uid, long budget, out long until)
    {
        until = 0;
        if (budget == long.MaxValue || !_entries.TryGetValue(uid, out var entry) || entry.PaceUsed < budget)
        {
            return false;
        }

        until = entry.PaceWindowStart + (entry.PaceUsed / budget * _paceWindowTicks);
        return _time.GetTimestamp() < until;
    }

    /// <summary>How long a kept step may run before its user's steps are kept no more for a while.</summary>
    public static readonly TimeSpan KeptOverrun = TimeSpan.FromMilliseconds(5);

    /// <summary>How long after an overrun a user's steps are not kept.</summary>
    public static readonly TimeSpan KeptPenalty = TimeSpan.FromSeconds(5);

    // A pace still owed is forgiven a second on (OthersServedFor): by then its flood among others is over.
    private bool IsSpent(in Entry entry, long now) =>
        entry.Sessions <= 0 && now >= entry.BusyUntil && now >= entry.FloodingUntil && now >= entry.WindowStart + _windowTicks &&
        now >= entry.SlicingUntil && now >= entry.SliceWindowStart + _windowTicks && now >= entry.KeptUntil &&
        (entry.PaceUsed == 0 ? now >= entry.PaceWindowStart + _paceWindowTicks : now >= entry.PaceWindowStart + _othersServedTicks);

    private struct Entry
    {
        public int Sessions;
        public int WindowEntries;
        public long WindowStart;
        public long BusyUntil;
        public long FloodingUntil;
        public int WindowSlices;
        public long SliceWindowStart;
        public long SlicingUntil;
        public long KeptUntil;
        public long PaceWindowStart;
        public long PaceUsed;
        public long HeldUntil;
    }
}
