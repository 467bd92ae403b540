using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// What the per-thread settings (<see cref="ThreadNice"/>, <see cref="ThreadSchedulingPolicy"/>) share: the calling
/// thread's id, and a probe that tries a setting on a scratch thread, which ends either way, so no thread of the
/// caller's is ever left changed by it.
/// </summary>
internal static partial class ThreadProbe
{
    /// <summary>Runs <paramref name="attempt"/> on a new thread and waits for it; false if it throws.</summary>
    public static bool OnScratchThread(string name, Func<bool> attempt)
    {
        var result = false;
        var probe = new Thread(() =>
        {
            try
            {
                result = attempt();
            }
#pragma warning disable CA1031 // a libc without the call: the setting is unavailable, and the caller says so
            catch (Exception)
#pragma warning restore CA1031
            {
                result = false;
            }
        }) { IsBackground = true, Name = name };
        probe.Start();
        probe.Join();
        return result;
    }

    // glibc 2.30 and later (Debian 12 has 2.36).
    [LibraryImport("libc", EntryPoint = "gettid")]
    public static partial int CurrentThreadId();
}
