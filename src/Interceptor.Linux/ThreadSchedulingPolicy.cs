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

    // Threads the caller creates afterwards start at SCHED_OTHER instead of inheriting the policy (a pool thread born on
    // a batch thread would otherwise run everyone's work that way). Setting the flag needs no privilege.
    private const int ResetOnFork = 0x40000000;

    /// <summary>Makes the calling thread SCHED_BATCH; false (errno kept) when the kernel refuses.</summary>
    public static bool TrySetBatch()
    {
        var priority = 0; // struct sched_param { int sched_priority; }: 0 for the ordinary policies
        return SchedSetScheduler(0, Batch | ResetOnFork, ref priority) == 0;
    }

    /// <summary>The policy of thread <paramref name="threadId"/> of this process (<see cref="Other"/>, <see cref="Batch"/>, …), or -1.</summary>
    public static int Of(int threadId) => SchedGetScheduler(threadId) is var policy and >= 0 ? policy & ~ResetOnFork : -1;

    /// <summary>The calling thread's id (gettid).</summary>
    public static int CurrentThreadId() => GetTid();

    [LibraryImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static partial int SchedSetScheduler(int pid, int policy, ref int param);

    [LibraryImport("libc", EntryPoint = "sched_getscheduler", SetLastError = true)]
    private static partial int SchedGetScheduler(int pid);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
