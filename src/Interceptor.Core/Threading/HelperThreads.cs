namespace Interceptor.Core.Threading;

/// <summary>
/// The daemon's helper threads: the store's writer and checkpointer, the log writer. A session's step hands them work
/// and goes on. Woken so, a helper thread used to take the core from the socket thread that woke it (the kernel favours
/// the thread it wakes): in a bench B round the store's writer alone did so 1,225 times a second, each time in the middle
/// of a step, with every session of that socket thread waiting behind it. So each helper thread calls
/// <see cref="Started"/> first, and the daemon says beforehand how a thread makes itself yield on waking (SCHED_BATCH:
/// Interceptor.Linux's ThreadSchedulingPolicy). It then runs on an idle core, or when the running thread's slice ends;
/// its share of the CPU is unchanged.
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
