using Interceptor.Core.Threading;

namespace Interceptor.Daemon.Fairness;

/// <summary>
/// Demotion: while other users are served, a pump runs a flooding user's items (see <see cref="UserLoad"/>) at nice
/// <see cref="DemotedNice"/> and sets its thread back to 0 before the pool gets it back. The turns share the daemon's
/// time; this shares the cores: a flood's relaying gives way to the other users' steps (on the socket threads, at 0),
/// their clients and upstreams, and still uses what they leave idle. Only when the process can go back to 0 (the
/// unit's LimitNICE=+0; probed at start by the caller, which otherwise passes no setter).
/// </summary>
public sealed partial class FairShareScheduler
{
    /// <summary>
    /// The nice value of a pump thread while it runs a flooding user's item and other users are served: weight 110
    /// against 1,024 at nice 0. Not 19 (weight 15): a demoted thread preempted inside a lock others need (the
    /// scheduler's own, the store's queue) or at a GC's suspension holds everyone up until it runs again.
    /// </summary>
    public const int DemotedNice = 10;
    /// <summary>
    /// Other users count as served for this long after the scheduler last saw a different user's item than the one
    /// before. A single user, however busy, is never demoted: there is nobody to give way to within the daemon.
    /// </summary>
    public static readonly TimeSpan OthersServedFor = TimeSpan.FromSeconds(1);
    /// <summary>Whether flooding users' items may run demoted (the process can set a thread's nice value back to 0).</summary>
    public bool Demotes => _setThreadNice is not null && !_demotionFailed;
    // The scheduler whose pump set this thread's nice value to 0 (the daemon has one). A pool thread created by a
    // demoted one starts at its creator's value, so a pump sets it once on a thread it has not seen.
    [ThreadStatic]
    private static FairShareScheduler? t_niceKnownFor;
    // An item of a user flooding among others (the caller looked): demoted unless it is blocking work (it starts
    // processes, such as an automatic suspension's nft, which would inherit the value, and holds locks others wait for).
    private bool ShouldDemote(UserSynchronizationContext context) => Demotes && !context.InBlockingWork;

    private bool SetNice(int nice)
    {
        try
        {
            return _setThreadNice!(nice);
        }
#pragma warning disable CA1031 // a pump must go on whatever the setter does; the item still runs, at the old value
        catch (Exception e)
#pragma warning restore CA1031
        {
            ReportFault(e);
            return false;
        }
    }

    /// <summary>
    /// Sets a demoted pump's thread back to 0. If the kernel refuses, the thread stays demoted for good: demotion stops
    /// (nothing else is raised that could not come back), the thread is set again when a pump next finds it unseen
    /// (the kernel may allow it then), and the fault is reported once. True when restored.
    /// </summary>
    private bool RestoreNice()
    {
        ThreadDemotion.Mark(false);
        if (SetNice(0))
        {
            return true;
        }

        t_niceKnownFor = null;
        if (!_demotionFailed)
        {
            _demotionFailed = true;
            ReportFault(new InvalidOperationException("a pump could not set its thread's nice value back to 0; flooding users are no longer demoted"));
        }

        return false;
    }

    // _onFault is the daemon's logger; whatever it throws must not take a pump's slot (or the process) with it.
    private void ReportFault(Exception e)
    {
        try
        {
            _onFault(e);
        }
#pragma warning disable CA1031 // see above
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}
