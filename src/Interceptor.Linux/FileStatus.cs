using System.Runtime.InteropServices;

namespace Interceptor.Linux;

/// <summary>
/// What statx reports about a file, read from the kernel's struct statx, which has one layout on every architecture
/// (unlike struct stat). <see cref="Mask"/> says which fields the file system filled: one may leave out what was asked for,
/// and its zeros would read as root's file of mode 0000.
/// </summary>
internal readonly partial record struct FileStatus(uint Mask, ushort Type, ushort Mode, uint Owner, uint Group, long Length, ulong Inode, ulong Device, uint Links)
{
    public const int AtCurrentDirectory = -100;   // AT_FDCWD
    public const int AtSymlinkNoFollow = 0x100;   // AT_SYMLINK_NOFOLLOW
    public const int AtEmptyPath = 0x1000;        // AT_EMPTY_PATH: the descriptor's own file
    public const uint TypeField = 0x1;            // STATX_TYPE
    public const uint ModeField = 0x2;            // STATX_MODE
    public const uint LinksField = 0x4;           // STATX_NLINK
    public const uint OwnerField = 0x8;           // STATX_UID
    public const uint GroupField = 0x10;          // STATX_GID
    public const uint InodeField = 0x100;         // STATX_INO
    public const uint SizeField = 0x200;          // STATX_SIZE
    public const ushort TypeMask = 0xF000;
    public const ushort RegularFile = 0x8000;
    public const ushort Directory = 0x4000;
    public const ushort SymbolicLink = 0xA000;
    public const ushort Socket = 0xC000;
    private const int BufferSize = 256;

    /// <summary>statx(<paramref name="directoryFd"/>, <paramref name="path"/>): 0, or the errno it failed with.</summary>
    public static unsafe int Get(int directoryFd, string path, int flags, uint fields, out FileStatus status)
    {
        var buffer = stackalloc byte[BufferSize];
        if (Statx(directoryFd, path, flags, fields, buffer) != 0)
        {
            status = default;
            return Marshal.GetLastPInvokeError();
        }

        // stx_mask at 0, stx_nlink at 16, stx_uid at 20, stx_gid at 24, stx_mode at 28, stx_ino at 32, stx_size at 40, stx_dev_major/minor at 136/140.
        var span = new ReadOnlySpan<byte>(buffer, BufferSize);
        var mode = MemoryMarshal.Read<ushort>(span[28..]);
        var device = ((ulong)MemoryMarshal.Read<uint>(span[136..]) << 32) | MemoryMarshal.Read<uint>(span[140..]);
        status = new FileStatus(
            MemoryMarshal.Read<uint>(span),
            (ushort)(mode & TypeMask),
            (ushort)(mode & 0xFFF),
            MemoryMarshal.Read<uint>(span[20..]),
            MemoryMarshal.Read<uint>(span[24..]),
            (long)MemoryMarshal.Read<ulong>(span[40..]),
            MemoryMarshal.Read<ulong>(span[32..]),
            device,
            MemoryMarshal.Read<uint>(span[16..]));
        return 0;
    }

    /// <summary>"0700": the permission bits as chmod takes them.</summary>
    public string OctalMode => "0" + Convert.ToString(Mode, 8).PadLeft(3, '0');

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(int directoryFd, string path, int flags, uint mask, byte* statxBuffer);
}
