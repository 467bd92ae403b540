using System.Text;

namespace Interceptor.Linux;

/// <summary>The kernel's limit on a Unix socket's path: sun_path holds 108 bytes, the last one its terminating NUL.</summary>
public static class UnixSocketPath
{
    public const int MaxBytes = 107;

    /// <summary>Why <paramref name="path"/> cannot name a Unix socket, or null when it can.</summary>
    public static string? LengthProblem(string path) =>
        Encoding.UTF8.GetByteCount(path) > MaxBytes ? $"longer than a Unix socket path may be ({MaxBytes} bytes)" : null;
}
