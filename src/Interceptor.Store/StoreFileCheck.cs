namespace Interceptor.Store;

/// <summary>
/// Before every commit: the store's files are still where they were opened, and writable (<see cref="FileGuard"/>).
/// The full check reads each guard's /proc/self/fd link and stats each path: five system calls, and a readlink of
/// /proc is a path walk plus a name built by the kernel (2% of the daemon's CPU under tests/bench/run's load, half of
/// a commit's cost on the store's writer thread). Deleting, renaming or replacing a file changes its directory's
/// modification time, so while that time stays what a full check saw, one stat of the directory and an fstat of each
/// held file (the read-only checks) say the same for less.
/// </summary>
/// <remarks>
/// A time is trusted only once it is <see cref="Settled"/> old at a full check: file times come from a coarse clock, and
/// a change within the same tick as the one a check saw could leave the time as it was. The directory's path is
/// looked up afresh every time, so a directory renamed away or replaced shows as missing or as another time.
/// </remarks>
internal sealed class StoreFileCheck(FileGuard[] guards, string directory)
{
    /// <summary>How old a directory's modification time must be before a full check trusts it.</summary>
    public static readonly TimeSpan Settled = TimeSpan.FromSeconds(2);

    private readonly DirectoryInfo _directory = new(directory);
    private DateTime? _trusted;

    /// <summary>Full checks made so far (tests see whether the quick one was taken).</summary>
    public long FullChecks { get; private set; }

    /// <summary>Null while every file is where it was and writable; otherwise what is wrong.</summary>
    public FileProblem? Problem()
    {
        _directory.Refresh();
        if (_directory.Exists && FileGuard.ReadOnlyMessage(_directory.FullName, _directory.UnixFileMode) is null &&
            _trusted == _directory.LastWriteTimeUtc)
        {
            foreach (var guard in guards)
            {
                if (guard.HeldReadOnlyProblem() is { } readOnly)
                {
                    return readOnly;
                }
            }

            return null;
        }

        var seen = _directory.Exists ? _directory.LastWriteTimeUtc : (DateTime?)null;
        var problem = FullProblem();
        _trusted = problem is null && seen < DateTime.UtcNow - Settled ? seen : null;
        return problem;
    }

    private FileProblem? FullProblem()
    {
        FullChecks++;
        foreach (var guard in guards)
        {
            if (guard.Problem() is { } problem)
            {
                return problem;
            }
        }

        return FileGuard.ReadOnlyProblem(directory) is { } readOnly ? new FileProblem(readOnly, false) : null;
    }
}
