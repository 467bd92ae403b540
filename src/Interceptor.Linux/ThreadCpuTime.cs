using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// The CPU time the calling thread has used (<c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>): what a piece of work cost,
/// without the time it was preempted, waited for a disk or a lock, or sat out a garbage collection's pause.
/// </summary>
public static partial class ThreadCpuTime
{
    private const int ClockThreadCpuTime = 3;

    /// <summary>Nanoseconds of CPU the calling thread has used; -1 if the kernel refuses (it does not on Linux).</summary>
    public static long Nanoseconds() => ClockGetTime(ClockThreadCpuTime, out var now) == 0 ? (now.Seconds * 1_000_000_000) + now.Nanoseconds : -1;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec now);
}
