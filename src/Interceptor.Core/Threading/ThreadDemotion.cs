namespace Interceptor.Core.Threading;

/// <summary>
/// Whether the current thread runs demoted (at a raised nice value: the daemon's fair share gives a flooding user's
/// relaying way to other users' work). Code that holds something others wait for while it runs (the store's commit on
/// the caller's thread holds the database's write lock) asks this and hands the work to a thread at the normal value
/// instead: a demoted holder preempted by the flood's own processes would make everyone wait for its next turn.
/// </summary>
public static class ThreadDemotion
{
    [ThreadStatic]
    private static bool t_demoted;

    /// <summary>True while the current thread runs demoted.</summary>
    public static bool IsDemoted => t_demoted;

    /// <summary>Set by the scheduler that changes the thread's nice value, right after it did.</summary>
    public static void Mark(bool demoted) => t_demoted = demoted;
}
