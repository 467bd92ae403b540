using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Interceptor.Linux;

/// <summary>A file an option names that must be the daemon's user's alone, refused with a message naming the problem.</summary>
public sealed class PrivateFileException(string message) : Exception(message);

/// <summary>
/// Reads a secret an option names (relay logins, the metrics endpoint's token): a regular file, not a symbolic link,
/// owned by the daemon's user, that neither group nor others may read, write or execute, and no larger than its kind
/// ever is. Messages name the file and the problem, never its contents.
/// </summary>
public static partial class PrivateFile
{
    // O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC: a FIFO at the path opens at once (and is then refused) instead of
    // holding the start until someone writes it; a link is refused by the kernel, not by a check a swap could pass.
    private const int OpenFlags = 0x800 | 0x20000 | 0x80000;
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxTypeModeUidSize = 0x1 | 0x2 | 0x8 | 0x200;
    private const int StatxSize = 256;
    private const int ELoop = 40;
    private const int EAcces = 13;
    private const ushort TypeMask = 0xF000;

    /// <param name="path">The file.</param>
    /// <param name="owner">The uid the daemon runs as: with group and others shut out, only its owner reads the file.</param>
    /// <param name="key">The option naming it, e.g. <c>Relay.CredentialsFile</c>.</param>
    /// <param name="contents">What a loose mode would give away, e.g. "the relay logins".</param>
    /// <param name="kind">What the file is, for the size message, e.g. "a credentials file".</param>
    /// <param name="maxBytes">The most such a file holds.</param>
    /// <exception cref="PrivateFileException">Missing, a link, not a regular file, someone else's, loose, too large.</exception>
    public static string ReadAllText(string path, uint owner, string key, string contents, string kind, long maxBytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var fd = Open(path, OpenFlags);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new PrivateFileException(errno switch
            {
                ELoop => $"{path}: is a symbolic link; {key} must name the file itself",
                EAcces when OwnerOfPath(path) is { } holder && holder != owner => NotOwned(path, holder, owner, contents),
                _ => $"{path}: cannot be read: {Marshal.GetPInvokeErrorMessage(errno)}",
            });
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var (type, mode, fileOwner, length) = Stat(handle, path);
        var problem = type != 0x8000 ? $"{path}: is {TypeName(type)}, not a regular file; {key} must name a file"
            : fileOwner != owner ? NotOwned(path, fileOwner, owner, contents)
            : (mode & 0x3F) != 0 ? $"{path}: mode {Octal(mode)} lets others than the daemon's user read {contents}; run chmod 600 {path}"
            : (mode & 0x100) == 0 ? $"{path}: mode {Octal(mode)} does not let its owner, the daemon's user, read it; run chmod 600 {path}"
            : length > maxBytes ? $"{path}: {length} bytes is more than {kind} holds ({maxBytes} at most)"
            : null;
        if (problem is not null)
        {
            throw new PrivateFileException(problem);
        }

        try
        {
            return ReadAtMost(handle, path, length);
        }
        catch (IOException e)
        {
            throw new PrivateFileException($"{path}: cannot be read: {e.Message}");
        }
    }

    private static string NotOwned(string path, uint holder, uint owner, string contents)
    {
        var chown = $"run chown {UserDatabase.NameForMessage(owner) ?? owner.ToString(System.Globalization.CultureInfo.InvariantCulture)} {path}";
        return holder == 0
            ? $"{path}: is owned by {UserDatabase.Describe(holder)}, which keeps the daemon's user ({UserDatabase.Describe(owner)}) from reading it; {chown}"
            : $"{path}: is owned by {UserDatabase.Describe(holder)}, not by the daemon's user ({UserDatabase.Describe(owner)}): its owner may read or change {contents}; {chown}";
    }

    private static string ReadAtMost(SafeFileHandle handle, string path, long length)
    {
        // Read at most one byte past the size seen: a file that grows meanwhile is refused, not read whole.
        var bytes = new byte[length + 1];
        var read = 0;
        for (int n; read < bytes.Length && (n = RandomAccess.Read(handle, bytes.AsSpan(read), read)) > 0;)
        {
            read += n;
        }

        return read > length
            ? throw new PrivateFileException($"{path}: grew while being read (past {length} bytes); check that nothing else writes it")
            : new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetString(bytes, 0, read).TrimStart('\uFEFF');
    }

    // The type, mode and owner of the file opened, not of the path a moment before: no swap in between can pass the check.
    private static unsafe (ushort Type, ushort Mode, uint Owner, long Length) Stat(SafeFileHandle handle, string path)
    {
        var buffer = stackalloc byte[StatxSize];
        if (Statx((int)handle.DangerousGetHandle(), "", AtEmptyPath, StatxTypeModeUidSize, buffer) != 0)
        {
            throw new PrivateFileException($"{path}: cannot be examined: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }

        var span = new ReadOnlySpan<byte>(buffer, StatxSize);
        var mode = MemoryMarshal.Read<ushort>(span[28..]);
        return ((ushort)(mode & TypeMask), (ushort)(mode & 0xFFF), MemoryMarshal.Read<uint>(span[20..]), (long)MemoryMarshal.Read<ulong>(span[40..]));
    }

    private static unsafe uint? OwnerOfPath(string path)
    {
        var buffer = stackalloc byte[StatxSize];
        return Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxTypeModeUidSize, buffer) == 0 ? *(uint*)(buffer + 20) : null;
    }

    private static string TypeName(ushort type) => type switch
    {
        0x1000 => "a FIFO",
        0x2000 => "a character device",
        0x4000 => "a directory",
        0x6000 => "a block device",
        0xC000 => "a socket",
        _ => $"of type 0{Convert.ToString(type >> 12, 8)}",
    };

    private static string Octal(ushort mode) => "0" + Convert.ToString(mode, 8).PadLeft(3, '0');

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(int directoryFd, string path, int flags, uint mask, byte* statxBuffer);
}
