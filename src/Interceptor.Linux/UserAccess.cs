using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// Whether another user can read a file: the search bit of every directory the kernel's lookup of its path passes
/// through (links among them followed as the kernel follows them) and the file's read bit, judged for that user from
/// owner, group and mode as the kernel does when no ACL is set. For check-config run as root for the daemon's user,
/// where root passes everything and the daemon's user may not (a token kept under /root, root's 0600 CA key): the check
/// would pass and the daemon would not start. What has an ACL is not judged (its mode's group bits are then the ACL's
/// mask), nor what cannot be examined, nor a user the databases cannot describe: the daemon's own open has the last word.
/// Capabilities a unit grants (CAP_DAC_READ_SEARCH) are not known here.
/// </summary>
public sealed partial class UserAccess
{
    private const uint Fields = FileStatus.TypeField | FileStatus.ModeField | FileStatus.OwnerField | FileStatus.GroupField;
    private const ushort OwnerSearch = 0x40;
    private const ushort GroupSearch = 0x8;
    private const ushort OthersSearch = 0x1;
    private const ushort OwnerRead = 0x100;
    private const ushort GroupRead = 0x20;
    private const ushort OthersRead = 0x4;

    private readonly uint _uid;
    private readonly HashSet<uint> _groups;

    private UserAccess(uint uid, IEnumerable<uint> groups)
    {
        _uid = uid;
        _groups = [.. groups];
    }

    /// <summary>
    /// <paramref name="uid"/> with the groups the databases give it (its primary group and getgrouplist's) and
    /// <paramref name="extraGroups"/> (a unit's SupplementaryGroups=); null for root, which passes every check, and for a
    /// uid without an account or a database that cannot be read, whose groups are unknown.
    /// </summary>
    /// <param name="uid">The user.</param>
    /// <param name="extraGroups">Groups held besides the databases' (a unit's SupplementaryGroups=).</param>
    /// <param name="primaryGroup">
    /// A primary group instead of the account's (a unit's Group=). systemd then gives the user that group and
    /// getgrouplist's for it, as initgroups does: the account's own primary group is held only where the group
    /// database lists the user in it. For gid 0 systemd skips initgroups: that group and the extra groups alone.
    /// </param>
    public static UserAccess? For(uint uid, IReadOnlyCollection<uint>? extraGroups = null, uint? primaryGroup = null)
    {
        if (uid == 0)
        {
            return null;
        }

        try
        {
            return UserDatabase.AccountOf(uid) is { } account
                ? new UserAccess(uid, GroupsHeld(account.Name, primaryGroup ?? account.Gid).Concat(extraGroups ?? []))
                : null;
        }
        catch (LinuxInteropException)
        {
            return null;
        }
    }

    // systemd's initgroups, which it skips for gid 0: a service in root's group gets SupplementaryGroups= alone beside it.
    private static IEnumerable<uint> GroupsHeld(string user, uint primaryGroup) =>
        primaryGroup == 0 ? [0] : UnixGroups.GroupsOf(user, primaryGroup).Append(primaryGroup);

    /// <summary>
    /// The first directory on the way to <paramref name="path"/> this user may not search, described
    /// ("/root (owner uid 0 (root), gid 0, mode 0700)"), or null when it may search them all or that cannot be told.
    /// </summary>
    public string? SearchBarrier(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Not Path.GetFullPath: it takes ".." from the text, where the kernel takes it from the directory a link led to.
        foreach (var directory in DirectoriesSearched(path))
        {
            if (Denied(directory, OwnerSearch, GroupSearch, OthersSearch, FileStatus.Directory) is { } denied)
            {
                return $"{directory} ({denied})";
            }
        }

        return null;
    }

    /// <summary>
    /// The owner, group and mode of the file at <paramref name="path"/> (a link there followed) when they deny this user
    /// reading it, described ("owner uid 0 (root), gid 0, mode 0600"); null when they grant it or that cannot be told.
    /// The directories on the way are <see cref="SearchBarrier"/>'s.
    /// </summary>
    public string? ReadDenied(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Denied(path, OwnerRead, GroupRead, OthersRead, FileStatus.RegularFile);
    }

    /// <summary>
    /// Every directory the kernel's lookup of <paramref name="path"/> searches, in order, links followed as the kernel
    /// follows them: where the file really is, whatever its path says (a link in /etc that leads into /tmp).
    /// </summary>
    public static IReadOnlyList<string> DirectoriesSearched(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return PathLookup.Steps(path).Select(step => step.Directory).Distinct(StringComparer.Ordinal).ToList();
    }

    // The file's owner, group and mode when they deny this user's class the bit it needs; null when they grant it, or
    // when it is not of the type expected, cannot be examined or has an ACL.
    private string? Denied(string path, ushort owner, ushort group, ushort others, ushort type)
    {
        if (FileStatus.Get(FileStatus.AtCurrentDirectory, path, 0, Fields, out var status) != 0
            || (status.Mask & Fields) != Fields || status.Type != type || HasAcl(path))
        {
            return null;
        }

        var bit = status.Owner == _uid ? owner : _groups.Contains(status.Group) ? group : others;
        return (status.Mode & bit) != 0 ? null : $"owner {UserDatabase.Describe(status.Owner)}, gid {status.Group}, mode {status.OctalMode}";
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

    [LibraryImport("libc", EntryPoint = "getxattr", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial nint GetXattr(string path, string name, nint value, nuint size);
}
