using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>What a failed reentrant NSS lookup (getpwnam_r, getgrnam_r, …) means for the caller's retry loop.</summary>
internal enum NssOutcome
{
    /// <summary>Try again: interrupted, or the buffer was too small and has been doubled.</summary>
    Retry,

    /// <summary>No such entry.</summary>
    NotFound,

    /// <summary>The database could not be read.</summary>
    Failed,
}

internal static class NssErrors
{
    /// <summary>
    /// Classifies <paramref name="error"/> from a lookup that found nothing; on ERANGE doubles <paramref name="size"/> up
    /// to <paramref name="maxSize"/> (beyond that the NSS source is broken, not the entry big).
    /// </summary>
    public static NssOutcome Classify(int error, ref int size, int maxSize)
    {
        if (error == LibC.ERANGE && size < maxSize)
        {
            size *= 2;
            return NssOutcome.Retry;
        }

        if (error == LibC.EINTR)
        {
            return NssOutcome.Retry;
        }

        // glibc reports "not found" as 0 with a null result; some NSS modules use these errnos.
        return error == 0 || error == LibC.ENOENT || error == LibC.ESRCH || error == LibC.EBADF || error == LibC.EPERM
            ? NssOutcome.NotFound
            : NssOutcome.Failed;
    }
}
