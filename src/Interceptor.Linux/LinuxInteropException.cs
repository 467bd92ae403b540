using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// A Linux system call failed. Carries the errno and the name of the call so a log line
/// says what broke ("socket(AF_NETLINK) failed: Permission denied (errno 13)") without a
/// stack trace.
/// </summary>
public class LinuxInteropException : Exception
{
    public LinuxInteropException()
    {
    }

    public LinuxInteropException(string message)
        : base(message)
    {
    }

    public LinuxInteropException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public LinuxInteropException(string call, int errno)
        : base(FormatMessage(call, errno))
    {
        Call = call;
        Errno = errno;
    }

    public LinuxInteropException(string call, int errno, Exception? innerException)
        : base(FormatMessage(call, errno), innerException)
    {
        Call = call;
        Errno = errno;
    }

    /// <summary>The failing call as written in the message, e.g. "recv(NETLINK_SOCK_DIAG)".</summary>
    public string? Call { get; }

    /// <summary>The Linux errno value (positive), or 0 when the failure was not an errno.</summary>
    public int Errno { get; }

    private static string FormatMessage(string call, int errno) =>
        $"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}

/// <summary>
/// The owner of a client socket could not be determined because of a fault (not because the
/// socket does not exist, which is a null result). Callers fail closed on it.
/// </summary>
public class OwnerLookupException : LinuxInteropException
{
    public OwnerLookupException()
    {
    }

    public OwnerLookupException(string message)
        : base(message)
    {
    }

    public OwnerLookupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public OwnerLookupException(string call, int errno)
        : base(call, errno)
    {
    }
}
