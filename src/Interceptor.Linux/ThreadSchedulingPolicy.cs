using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// The calling thread's scheduling policy (Linux keeps one per thread: <c>sched_setscheduler(0, …)</c>). Only the two
/// ordinary policies: SCHED_OTHER and SCHED_BATCH, which differ in one thing, that a woken SCHED_BATCH thread never
/// preempts the thread running on its core: it takes an idle core, or its turn when the running one's slice ends. Same
/// nice value, same share of the CPU; switching needs no privilege (RestrictRealtime= and the unit's system-call filter
/// allow it).
/// </summary>
public static partial class ThreadSchedulingPolicy
{
    public const int Other = 0;
    public const int Batch = 3;

    // What sched_getscheduler adds to a policy set with SCHED_RESET_ON_FORK (not used here: for SCHED_BATCH that flag
    // changes nothing, and the unit's RestrictRealtime= refuses it).
    private const int ResetOnFork = 0x40000000;

    /// <summary>
    /// Makes the calling thread SCHED_BATCH; false (errno kept) when refused, the thread unchanged. Threads the runtime
    /// starts afterwards (managed threads, pool workers) still start at SCHED_OTHER: .NET creates them with an explicit
    /// policy. A native thread started by plain pthread_create from this one would inherit it.
    /// </summary>
    public static bool TrySetBatch()
    {
        var priority = 0; // struct sched_param { int sched_priority; }: 0 for the ordinary policies
        return SchedSetScheduler(0, Batch, ref priority) == 0;
    }

    /// <summary>Whether this process may make a thread SCHED_BATCH: tried on a scratch thread, which ends either way.</summary>
    public static bool CanSetBatch() => ThreadProbe.OnScratchThread("smtpi-policy-probe", TrySetBatch);

    /// <summary>The policy of thread <paramref name="threadId"/> of this process (<see cref="Other"/>, <see cref="Batch"/>, …), or -1.</summary>
    public static int Of(int threadId) => SchedGetScheduler(threadId) is var policy and >= 0 ? policy & ~ResetOnFork : -1;

    /// <summary>The calling thread's id (gettid).</summary>
    public static int CurrentThreadId() => ThreadProbe.CurrentThreadId();

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static partial int SchedSetScheduler(int pid, int policy, ref int param);

    [LibraryImport("libc", EntryPoint = "sched_getscheduler", SetLastError = true)]
    private static partial int SchedGetScheduler(int pid);
}
