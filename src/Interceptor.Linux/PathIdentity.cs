using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>What is at a path, without following a symlink there (statx): enough to tell our socket from anything else.</summary>
/// <param name="IsSocket">S_ISSOCK.</param>
/// <param name="Device">The file system (major, minor) and <paramref name="Inode"/> name the file itself, whatever its path.</param>
public readonly record struct PathIdentity(bool IsSocket, ulong Device, ulong Inode)
{
    /// <summary>The identity of what is at <paramref name="path"/>, or null when nothing is.</summary>
    /// <exception cref="LinuxInteropException">statx failed for another reason than ENOENT/ENOTDIR (e.g. EACCES).</exception>
    public static PathIdentity? Of(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var errno = FileStatus.Get(FileStatus.AtCurrentDirectory, path, FileStatus.AtSymlinkNoFollow, FileStatus.TypeField | FileStatus.InodeField, out var status);
        if (errno != 0)
        {
            return errno == LibC.ENOENT || errno == LibC.ENOTDIR ? null : throw new LinuxInteropException($"statx({path})", errno);
        }

        return new PathIdentity(status.Type == FileStatus.Socket, status.Device, status.Inode);
    }
}
