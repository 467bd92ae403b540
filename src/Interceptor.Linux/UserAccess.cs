using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// Whether another user can read a file: the search bit of each directory on the way and the file's read bit, for that
/// user, judged from owner, group and mode as the kernel does when no ACL is set. For check-config run as root for the
/// daemon's user, where root passes everything and the daemon's user may not (a token kept under /root, root's 0600 CA
/// key): the check would pass and the daemon would not start. What has an ACL is not judged (its mode's group bits are
/// then the ACL's mask), nor what cannot be examined: the daemon's own open has the last word there.
/// </summary>
public static partial class UserAccess
{
    private const uint Fields = FileStatus.TypeField | FileStatus.ModeField | FileStatus.OwnerField | FileStatus.GroupField;
    private const ushort OwnerSearch = 0x40;
    private const ushort GroupSearch = 0x8;
    private const ushort OthersSearch = 0x1;
    private const ushort OwnerRead = 0x100;
    private const ushort GroupRead = 0x20;
    private const ushort OthersRead = 0x4;

    /// <summary>
    /// Why <paramref name="uid"/> may not read <paramref name="path"/> ("may not search /root (…)", "may not read it (…)"),
    /// or null when it may, or when that cannot be told (no such file or account, an ACL).
    /// </summary>
    /// <exception cref="LinuxInteropException">The user or group database could not be read.</exception>
    public static string? Unreadable(string path, uint uid)
    {
        if (SearchBarrier(path, uid) is { } barrier)
        {
            return $"may not search {barrier}";
        }

        if (uid == 0 || UserDatabase.GroupsOf(uid) is not { } groups)
        {
            return null;
        }

        var denied = Denied(path, uid, groups, OwnerRead, GroupRead, OthersRead, FileStatus.RegularFile);
        return denied is null ? null : $"may not read it ({denied})";
    }

    /// <summary>
    /// The first directory on the way to <paramref name="path"/> that <paramref name="uid"/> may not search, described
    /// ("/root (owner uid 0 (root), gid 0, mode 0700)"), or null when it may search them all or that cannot be told.
    /// A link among the directories leads through its target's directories too: those are judged as well.
    /// </summary>
    /// <exception cref="LinuxInteropException">The user or group database could not be read.</exception>
    public static string? SearchBarrier(string path, uint uid)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (uid == 0 || Path.GetDirectoryName(Path.GetFullPath(path)) is not { } parent)
        {
            return null;
        }

        // No account: the user's groups are unknown, and the daemon cannot run as it anyway (said elsewhere).
        if (UserDatabase.GroupsOf(uid) is not { } groups)
        {
            return null;
        }

        var directories = Ancestors(parent);
        if (RealPath(parent) is { } real && real != parent)
        {
            directories.AddRange(Ancestors(real).Except(directories));
        }

        foreach (var directory in directories)
        {
            if (Denied(directory, uid, groups, OwnerSearch, GroupSearch, OthersSearch, FileStatus.Directory) is { } denied)
            {
                return $"{directory} ({denied})";
            }
        }

        return null;
    }

    // The file's owner, group and mode when they deny the class of uid the bit it needs; null when they grant it, or
    // when it is not of the type expected, cannot be examined or has an ACL.
    private static string? Denied(string path, uint uid, IReadOnlyList<uint> groups, ushort owner, ushort group, ushort others, ushort type)
    {
        if (FileStatus.Get(FileStatus.AtCurrentDirectory, path, 0, Fields, out var status) != 0
            || (status.Mask & Fields) != Fields || status.Type != type || HasAcl(path))
        {
            return null;
        }

        var bit = status.Owner == uid ? owner : groups.Contains(status.Group) ? group : others;
        return (status.Mode & bit) != 0 ? null : $"owner {UserDatabase.Describe(status.Owner)}, gid {status.Group}, mode {status.OctalMode}";
    }

    // "/", "/a", "/a/b" for "/a/b": each must be searchable to look up the next name in it.
    private static List<string> Ancestors(string directory)
    {
        var found = new List<string>();
        for (var d = directory; d is not null; d = Path.GetDirectoryName(d))
        {
            found.Insert(0, d);
        }

        return found;
    }

    private static unsafe string? RealPath(string directory)
    {
        var resolved = Resolve(directory, 0);
        if (resolved == 0)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            NativeMemory.Free((void*)resolved);
        }
    }

    private static bool HasAcl(string path)
    {
        if (GetXattr(path, "system.posix_acl_access", 0, 0) >= 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        return errno != LibC.ENODATA && errno != LibC.EOPNOTSUPP;
    }

    // realpath(path, NULL): a string malloc gave, for the caller to free.
    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial nint Resolve(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "getxattr", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial nint GetXattr(string path, string name, nint value, nuint size);
}
