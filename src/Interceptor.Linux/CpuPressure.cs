using Microsoft.Win32.SafeHandles;

namespace Interceptor.Linux;

/// <summary>
/// CPU pressure (PSI): the "some" line's <c>total</c>, the microseconds in which at least one runnable task waited for
/// a CPU, counted since boot; of the machine (<c>/proc/pressure/cpu</c>) or of one cgroup (its <c>cpu.pressure</c>). Two readings a known time apart give the
/// share of that time the CPU was contended. The file is opened once and read again from offset 0 (a seq_file shows
/// fresh figures at every read from the start): one system call a reading.
/// </summary>
public sealed class CpuPressure : IDisposable
{
    /// <summary>The kernel's file; absent without CONFIG_PSI, unreadable (EOPNOTSUPP) when booted with psi=0.</summary>
    public const string DefaultPath = "/proc/pressure/cpu";

    /// <summary>
    /// This process's own cgroup's <c>cpu.pressure</c> when it has one (cgroup v2, not the root: under systemd the
    /// unit's), else the machine's. The cgroup's counts only this process's waits: a customer's busy loops at nice 19 or
    /// SCHED_IDLE, which wait whenever anything else runs and so keep the machine's "some" near 100% at no cost to
    /// anyone, do not make the daemon wait, and do not move it.
    /// </summary>
    public static string PathForThisProcess(string procSelf = "/proc/self")
    {
        try
        {
            var group = File.ReadLines(Path.Combine(procSelf, "cgroup")).FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..];
            var mount = File.ReadLines(Path.Combine(procSelf, "mountinfo")).Select(CgroupTwoMountPoint).FirstOrDefault(m => m is not null);
            if (group is null || group == "/" || mount is null || group.Contains("/..", StringComparison.Ordinal))
            {
                return DefaultPath;
            }

            var path = mount.TrimEnd('/') + group + "/cpu.pressure";
            return File.Exists(path) ? path : DefaultPath;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return DefaultPath;
        }
    }

    // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER"; the cgroup2 mount whose
    // root is the hierarchy's (a bind mount of a subtree would need the cgroup path made relative to it).
    private static string? CgroupTwoMountPoint(string line)
    {
        var fields = line.Split(' ');
        var dash = Array.IndexOf(fields, "-");
        return dash > 4 && dash + 1 < fields.Length && fields[dash + 1] == "cgroup2" && fields[3] == "/" ? Unescape(fields[4]) : null;
    }

    // mountinfo writes a space, tab, newline and backslash in a path as \040, \011, \012 and \134.
    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new System.Text.StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field[i + 1]) && IsOctal(field[i + 2]) && IsOctal(field[i + 3]))
            {
                text.Append((char)(((field[i + 1] - '0') * 64) + ((field[i + 2] - '0') * 8) + (field[i + 3] - '0')));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }

    private static bool IsOctal(char c) => c is >= '0' and <= '7';

    private readonly SafeFileHandle _file;
    private readonly byte[] _buffer = new byte[256];

    private CpuPressure(SafeFileHandle file) => _file = file;

    /// <summary>The reader, or null when the kernel gives no CPU pressure (then nothing can be paced by it).</summary>
    public static CpuPressure? TryOpen(string path = DefaultPath)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        var reader = new CpuPressure(file);
        if (reader.TryReadSomeTotal() < 0)
        {
            reader.Dispose();
            return null;
        }

        return reader;
    }

    /// <summary>The "some" total in microseconds, or -1 if the file could not be read or parsed.</summary>
    public long TryReadSomeTotal()
    {
        int read;
        try
        {
            read = RandomAccess.Read(_file, _buffer, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            return -1;
        }

        return ParseSomeTotal(_buffer.AsSpan(0, read));
    }

    /// <summary>The <c>total=</c> of the first line (<c>some avg10=… total=N</c>), or -1 if it is not there.</summary>
    public static long ParseSomeTotal(ReadOnlySpan<byte> text)
    {
        var end = text.IndexOf((byte)'\n');
        var line = end < 0 ? text : text[..end];
        if (!line.StartsWith("some "u8))
        {
            return -1;
        }

        var at = line.IndexOf("total="u8);
        if (at < 0)
        {
            return -1;
        }

        long total = 0;
        var digits = line[(at + "total=".Length)..];
        if (digits.IsEmpty)
        {
            return -1;
        }

        foreach (var b in digits)
        {
            if (b is < (byte)'0' or > (byte)'9' || total > (long.MaxValue - 9) / 10)
            {
                return -1;
            }

            total = (total * 10) + (b - '0');
        }

        return total;
    }

    public void Dispose() => _file.Dispose();
}
