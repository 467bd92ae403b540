using Microsoft.Win32.SafeHandles;

namespace Interceptor.Store;

/// <summary>What is wrong with a store file; permanent when it can never be right again without reopening.</summary>
internal readonly record struct FileProblem(string Description, bool Permanent);

/// <summary>
/// Notices that a file SQLite has open was deleted, renamed or replaced, or that an admin made it read-only.
/// SQLite in WAL mode keeps writing to an unlinked inode, so without this a deleted database would swallow every
/// transaction while the tasks report success. We hold our own read-only handle on the same inode: the kernel's
/// /proc/self/fd/N link then names where that inode lives now (with " (deleted)" once unlinked), which gives the inode
/// comparison stat(2) would, without P/Invoke outside Interceptor.Linux.
/// </summary>
/// <remarks>
/// Closing any descriptor of a file drops the process's POSIX locks on it, SQLite's included; so this handle is only
/// closed after every SQLite connection to the file is closed.
/// </remarks>
internal sealed class FileGuard : IDisposable
{
    private readonly string _path;
    private readonly SafeFileHandle _handle;
    private readonly string? _procLink;
    private readonly string? _expectedTarget;

    private FileGuard(string path, SafeFileHandle handle, string? procLink, string? expectedTarget)
    {
        _path = path;
        _handle = handle;
        _procLink = procLink;
        _expectedTarget = expectedTarget;
    }

    public static FileGuard Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        try
        {
            var procLink = $"/proc/self/fd/{handle.DangerousGetHandle()}";
            // Without /proc (unusual on Linux) fall back to checking that the path exists, which still catches deletion.
            var target = File.Exists(procLink) ? new FileInfo(procLink).LinkTarget : null;
            return new FileGuard(path, handle, target is null ? null : procLink, target);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Null while the path still names our inode and its owner may write it; otherwise what changed.</summary>
    public FileProblem? Problem()
    {
        if (_procLink is not null && _expectedTarget is not null)
        {
            string? now;
            try
            {
                now = new FileInfo(_procLink).LinkTarget;
            }
            catch (IOException ex)
            {
                return new FileProblem($"cannot verify {_path}: {ex.Message}", false);
            }

            if (!string.Equals(now, _expectedTarget, StringComparison.Ordinal))
            {
                return new FileProblem(
                    File.Exists(_path)
                        ? $"{_path} was replaced or moved while open (now {now}); writes would go to a file nobody reads"
                        : $"{_path} was deleted while open; writes would go to an unlinked file and be lost",
                    true);
            }
        }
        else if (!File.Exists(_path))
        {
            return new FileProblem($"{_path} was deleted while open; writes would go to an unlinked file and be lost", true);
        }

        return ReadOnlyProblem(_path) is { } readOnly ? new FileProblem(readOnly, false) : null;
    }

    /// <summary>True when the path still names the inode this guard holds (unknown without /proc: then false).</summary>
    public bool StillAtPath()
    {
        if (_procLink is null)
        {
            return false;
        }

        try
        {
            return string.Equals(new FileInfo(_procLink).LinkTarget, _expectedTarget, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// The read-only check of the file this guard holds, by its descriptor (fstat: no path to walk). Names the file
    /// only while the path still leads to it, which <see cref="StoreFileCheck"/> establishes before it asks.
    /// </summary>
    public FileProblem? HeldReadOnlyProblem()
    {
        try
        {
            return ReadOnlyMessage(_path, File.GetUnixFileMode(_handle)) is { } readOnly ? new FileProblem(readOnly, false) : null;
        }
        catch (IOException ex)
        {
            return new FileProblem($"cannot stat {_path}: {ex.Message}", false);
        }
    }

    /// <summary>
    /// An owner without the write bit is an admin's way of saying "read-only". The daemon may run as root, whom a
    /// mode does not stop, so we honour the intent instead of relying on EACCES.
    /// </summary>
    public static string? ReadOnlyProblem(string path)
    {
        try
        {
            return ReadOnlyMessage(path, File.GetUnixFileMode(path));
        }
        catch (FileNotFoundException)
        {
            return $"{path} is missing";
        }
        catch (DirectoryNotFoundException)
        {
            return $"{path} is missing";
        }
        catch (IOException ex)
        {
            return $"cannot stat {path}: {ex.Message}";
        }
        catch (UnauthorizedAccessException ex)
        {
            return $"permission denied on {path}: {ex.Message}";
        }
    }

    public static string? ReadOnlyMessage(string path, UnixFileMode mode) =>
        (mode & UnixFileMode.UserWrite) == 0
            ? $"read-only: {path} has mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')} (no write permission for its owner)"
            : null;

    public void Dispose() => _handle.Dispose();
}
