using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// What .NET does not offer for files that must survive a crash: fsync of a directory (so a new or renamed entry is on
/// disk, not only the file's bytes) and a path's owner (the process's effective uid is <see cref="UserDatabase.EffectiveUid"/>).
/// </summary>
public static partial class DurableFiles
{
    private const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY
    private const int CloseOnExec = 0x80000;       // O_CLOEXEC

    /// <summary>Flushes the directory's entries to disk.</summary>
    /// <exception cref="IOException">The directory could not be opened or synced.</exception>
    public static void SyncDirectory(string directory)
    {
        var fd = Open(directory, ReadOnlyDirectory | CloseOnExec);
        if (fd < 0)
        {
            throw new IOException($"open({directory}) for fsync failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync({directory}) failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>The uid that owns <paramref name="path"/>.</summary>
    /// <exception cref="IOException">It could not be examined.</exception>
    public static uint OwnerOf(string path)
    {
        var errno = FileStatus.Get(FileStatus.AtCurrentDirectory, path, 0, FileStatus.OwnerField, out var status);
        return errno == 0 ? status.Owner : throw new IOException($"statx({path}) failed: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
