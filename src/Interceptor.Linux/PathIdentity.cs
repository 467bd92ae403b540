using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>What is at a path, without following a symlink there (statx): enough to tell our socket from anything else.</summary>
/// <param name="IsSocket">S_ISSOCK.</param>
/// <param name="Device">The file system (major, minor) and <paramref name="Inode"/> name the file itself, whatever its path.</param>
public readonly partial record struct PathIdentity(bool IsSocket, ulong Device, ulong Inode)
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const uint StatxIno = 0x100;
    private const int StatxSize = 256;
    private const ushort TypeMask = 0xF000;
    private const ushort TypeSocket = 0xC000;

    /// <summary>The identity of what is at <paramref name="path"/>, or null when nothing is.</summary>
    /// <exception cref="LinuxInteropException">statx failed for another reason than ENOENT/ENOTDIR (e.g. EACCES).</exception>
    public static unsafe PathIdentity? Of(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);

        // struct statx has one layout on every architecture (the kernel's), unlike struct stat.
        var buffer = stackalloc byte[StatxSize];
        if (Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType | StatxIno, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno == LibC.ENOENT || errno == LibC.ENOTDIR ? null : throw new LinuxInteropException($"statx({path})", errno);
        }

        var span = new ReadOnlySpan<byte>(buffer, StatxSize);
        var mode = MemoryMarshal.Read<ushort>(span[28..]);
        var inode = MemoryMarshal.Read<ulong>(span[32..]);
        var major = MemoryMarshal.Read<uint>(span[136..]);
        var minor = MemoryMarshal.Read<uint>(span[140..]);
        return new PathIdentity((mode & TypeMask) == TypeSocket, ((ulong)major << 32) | minor, inode);
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(int directoryFd, string path, int flags, uint mask, byte* statxBuffer);
}
