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

    // Set once demotion is on: what sets the calling thread's nice value (false if refused).
    private static Func<int, bool>? s_setNice;

    // Bumped by every EnableNormalizing: a thread set to 0 under an earlier setter is looked at again.
    private static int s_generation;

    [ThreadStatic]
    private static int t_normalIn;

    /// <summary>Demotion is on: <see cref="EnsureNormal"/> sets threads it has not seen to 0 with this (null: off again).</summary>
    public static void EnableNormalizing(Func<int, bool>? setNice)
    {
        s_setNice = setNice;
        Interlocked.Increment(ref s_generation);
    }

    /// <summary>
    /// Sets this thread's nice value to 0 once, unless it runs demoted now. Linux starts a thread at its creator's value,
    /// and the thread pool creates a worker on whichever thread queues work: a demoted pump that completes a task can be
    /// the parent of a pool thread that then runs anyone's work (a connection's attribution and first step, the control
    /// socket) at the flood's value. Called where pool threads start work that is not the scheduler's.
    /// </summary>
    public static void EnsureNormal()
    {
        var generation = Volatile.Read(ref s_generation);
        if (t_normalIn == generation || t_demoted || s_setNice is not { } setNice)
        {
            return;
        }

        // Refused (the kernel may allow it later): asked again next time.
        if (setNice(0))
        {
            t_normalIn = generation;
        }
    }

    /// <summary>
    /// <see cref="Task.Run(Action)"/> on a thread set to 0 first (<see cref="EnsureNormal"/>): work started where a
    /// demoted pump may be the creator of the pool thread that runs it (a /proc walk for a connection's process, an idle
    /// client's upstream given back, a certificate minted for a handshake).
    /// </summary>
    public static Task RunNormal(Action work) => Task.Run(() =>
    {
        EnsureNormal();
        work();
    });

    /// <inheritdoc cref="RunNormal(Action)"/>
    public static Task<T> RunNormal<T>(Func<T> work) => Task.Run(() =>
    {
        EnsureNormal();
        return work();
    });

    /// <inheritdoc cref="RunNormal(Action)"/>
    public static Task RunNormal(Func<Task> work) => Task.Run(() =>
    {
        EnsureNormal();
        return work();
    });

    /// <inheritdoc cref="RunNormal(Action)"/>
    public static Task<T> RunNormal<T>(Func<Task<T>> work) => Task.Run(() =>
    {
        EnsureNormal();
        return work();
    });
}
