using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>The process's open-file limit (RLIMIT_NOFILE): the soft one is enforced, the hard one is its ceiling.</summary>
public readonly partial record struct DescriptorLimit(ulong Soft, ulong Hard)
{
    private const int RlimitNofile = 7;

    /// <summary>The limit as the kernel has it now.</summary>
    /// <exception cref="LinuxInteropException">getrlimit failed.</exception>
    public static DescriptorLimit Current()
    {
        if (GetRlimit(RlimitNofile, out var limit) != 0)
        {
            throw new LinuxInteropException("getrlimit(RLIMIT_NOFILE)", Marshal.GetLastPInvokeError());
        }

        return new DescriptorLimit(limit.Current, limit.Maximum);
    }

    /// <summary>
    /// Raises the soft limit to the hard one (what an unprivileged process may do; systemd's LimitNOFILE sets both,
    /// a login shell usually gives 1024 soft) and returns the limit in force afterwards.
    /// </summary>
    /// <exception cref="LinuxInteropException">getrlimit or setrlimit failed.</exception>
    public static DescriptorLimit RaiseSoftToHard()
    {
        var current = Current();
        if (current.Soft >= current.Hard)
        {
            return current;
        }

        var raised = new Rlimit { Current = current.Hard, Maximum = current.Hard };
        if (SetRlimit(RlimitNofile, in raised) != 0)
        {
            throw new LinuxInteropException("setrlimit(RLIMIT_NOFILE)", Marshal.GetLastPInvokeError());
        }

        return Current();
    }

    /// <summary>How many descriptors this process has open now (the entries of /proc/self/fd, less the one reading it).</summary>
    public static int CountOpen() => Math.Max(0, Directory.EnumerateFileSystemEntries("/proc/self/fd").Count() - 1);

    [StructLayout(LayoutKind.Sequential)]
    private struct Rlimit
    {
        // rlim_t is 64 bits on every 64-bit Linux ABI .NET runs on.
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRlimit(int resource, out Rlimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRlimit(int resource, in Rlimit limit);
}
