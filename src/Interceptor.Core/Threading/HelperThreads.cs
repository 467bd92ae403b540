namespace Interceptor.Core.Threading;

/// <summary>
/// The daemon's helper thread: the store's writer (one today; the log writer and the checkpointer are not, see theirs).
/// A session's step hands it work and goes on. Woken so, the writer used to take the core from the socket thread that woke it (the kernel favours
/// the thread it wakes): in a bench B round the store's writer alone did so 1,225 times a second, each time in the middle
/// of a step, with every session of that socket thread waiting behind it. So a helper thread calls
/// <see cref="Started"/> first, and the daemon says beforehand how a thread makes itself yield on waking (SCHED_BATCH:
/// Interceptor.Linux's ThreadSchedulingPolicy). It then runs on an idle core, or when the running thread's slice ends;
/// its share of the CPU is unchanged. The price: while other processes keep both cores busy, a woken helper waits for
/// the tick that ends the running one's slice (a few milliseconds) before it commits; the store's checkpointer, which the
/// writer waits for while it holds the write lock, is therefore not one.
/// </summary>
public static class HelperThreads
{
    private static Func<bool>? s_yieldOnWake;

    /// <summary>How helper threads started from now on make themselves yield on waking (null: they do not).</summary>
    public static void YieldOnWakeWith(Func<bool>? setPolicy) => Volatile.Write(ref s_yieldOnWake, setPolicy);

    /// <summary>Called first on a helper thread: true when the thread now yields on waking.</summary>
    public static bool Started()
    {
        try
        {
            return Volatile.Read(ref s_yieldOnWake)?.Invoke() ?? false;
        }
#pragma warning disable CA1031 // a libc without the call: the thread runs as it would have, which is no fault
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }
}
