using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// The nice value of the calling thread alone (Linux keeps one per thread: <c>setpriority(PRIO_PROCESS, gettid())</c>).
/// Raising it needs nothing; lowering it back needs CAP_SYS_NICE or an RLIMIT_NICE that allows the lower value (the
/// unit's <c>LimitNICE=+0</c>), so <see cref="CanLowerAgain"/> is asked once before anything is raised.
/// </summary>
public static partial class ThreadNice
{
    private const int PrioProcess = 0;

    /// <summary>Sets the calling thread's nice value; false (errno kept) when the kernel refuses it.</summary>
    public static bool TrySet(int nice) => SetPriority(PrioProcess, ThreadProbe.CurrentThreadId(), nice) == 0;

    /// <summary>
    /// Whether this process may raise a thread's nice value and lower it back to 0: tried on a scratch thread, which
    /// ends either way, so no thread of the caller's is ever left raised by the probe.
    /// </summary>
    public static bool CanLowerAgain(int raisedTo) => ThreadProbe.OnScratchThread("smtpi-nice-probe", () => TrySet(raisedTo) && TrySet(0));

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int prio);
}
