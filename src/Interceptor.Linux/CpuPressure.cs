using Microsoft.Win32.SafeHandles;

namespace Interceptor.Linux;

/// <summary>
/// The machine's CPU pressure (PSI, <c>/proc/pressure/cpu</c>): the "some" line's <c>total</c>, the microseconds in
/// which at least one runnable task waited for a CPU, counted since boot. Two readings a known time apart give the
/// share of that time the CPU was contended. The file is opened once and read again from offset 0 (a seq_file shows
/// fresh figures at every read from the start): one system call a reading.
/// </summary>
public sealed class CpuPressure : IDisposable
{
    /// <summary>The kernel's file; absent without CONFIG_PSI, unreadable (EOPNOTSUPP) when booted with psi=0.</summary>
    public const string DefaultPath = "/proc/pressure/cpu";

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
