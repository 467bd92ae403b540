using System.Runtime.InteropServices;
using Interceptor.Core.Text;

namespace Interceptor.Linux;

/// <summary>
/// Whether anyone but root could change where a path leads. A fix printed for an admin to paste as root (<c>chown</c>,
/// <c>chmod</c>) follows the path when it runs, not when the message was written: where a customer may rename the
/// entries of a directory the lookup passes (her home, a group-writable directory), she swaps a link in meanwhile and
/// root's <c>chmod a+r</c> lands on /etc/shadow. Such a fix is then not printed. Only root is trusted, not the daemon's
/// user: a daemon taken over through its SMTP input must not turn root's <c>chown</c> of its secret into root itself.
/// </summary>
public static partial class PathCustody
{
    private const uint Fields = FileStatus.TypeField | FileStatus.ModeField | FileStatus.OwnerField | FileStatus.GroupField | FileStatus.LinksField;
    private const ushort GroupOrOthersWrite = 0x12;
    private const ushort Sticky = 0x200;
    private const long FuseMagic = 0x65735546;   // FUSE_SUPER_MAGIC: owner and mode are whatever a user's server reports

    /// <summary>
    /// The first place on the lookup of <paramref name="path"/> (links followed) that a user other than root may change,
    /// described ("/home/alice (owner uid 1001 (alice), gid 1001, mode 0755)"); null when there is none. Open are a
    /// directory that is someone else's, that group or others may write (with an ACL, its mode's group bits are the ACL's
    /// mask, which bounds what any named user or group gets), or that is on a FUSE file system; a link someone else made
    /// (its target is theirs, wherever root moved it); in a sticky directory such as /tmp, where only an entry's owner may
    /// rename it, an entry that is someone else's; a file with a second name (a hard link someone made to it, whose
    /// directory this walk never sees), or on a FUSE file system itself (mounted over a file).
    /// What cannot be examined counts as open: this decides whether root is told to run something.
    /// </summary>
    public static string? OpenPlace(string path) => Judge(path).Open;

    /// <summary>
    /// The clause that ends a problem's message: <c>run COMMAND</c> when only root can change where the path leads
    /// (<see cref="OpenPlace"/>), it leads to itself, not through a link, and the file is root's or the daemon's user's;
    /// else why no command is given and how to put the file where one would be safe.
    /// </summary>
    /// <param name="path">The file the command changes.</param>
    /// <param name="command">The command, its words quoted (<see cref="ShellWord"/>).</param>
    /// <param name="wanted">What to make of the new file, e.g. "give it owner smtp-interceptor and mode 0600".</param>
    /// <param name="daemonUid">The daemon's user, whose own file a chmod may fix in place.</param>
    public static string Fix(string path, string command, string wanted, uint daemonUid)
    {
        var (open, file, owner) = Judge(path);
        if (open is not null || file is null)
        {
            return MakeAnew($"{open ?? path + " (cannot be examined, so counted as open)"} may be changed by users other than root, who could put a link there "
                + "for a pasted command to follow", wanted);
        }

        // A path through links leads where whoever made them chose (a link copied with cp -r from a customer's directory
        // is root's): its name is hers, and one escaped for the terminal or invisible would read as another file. No
        // command then names it (nor for a path that only spells its way there differently, with ".." or "//").
        if (file != path)
        {
            return $"no command is given, as {path} leads elsewhere, to {file}, which may not be the file meant; point the option at the file itself";
        }

        // Her own file keeps whatever she opened before a chown or chmod: a descriptor to read what root writes next, or
        // a second name she adds meanwhile. And she knows what it held.
        return owner == 0 || owner == daemonUid
            ? $"run {command}"
            : MakeAnew($"{path} belongs to {UserDatabase.Describe(owner)}, who keeps any access opened before a chown or chmod", wanted);
    }

    private static string MakeAnew(string why, string wanted) =>
        $"no command is given, as {why}; make the file anew from a copy you trust (moving or copying this one could carry such a link or access along) "
        + $"in a directory only root may change, such as /etc/smtp-interceptor; {wanted} and point the option at it";

    // The first open place, or the file the lookup ends at (null when it did not get there) and its owner.
    private static (string? Open, string? File, uint Owner) Judge(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string? file = null;
        uint owner = 0;
        foreach (var step in PathLookup.Steps(path))
        {
            file = null;
            if (Examine(step.Directory) is not { Type: FileStatus.Directory } directory || FileSystemType(step.Directory) is not { } type)
            {
                return ($"{step.Directory} (cannot be examined, so counted as open)", null, 0);
            }

            var sticky = (directory.Mode & Sticky) != 0;
            if (directory.Owner != 0 || ((directory.Mode & GroupOrOthersWrite) != 0 && !sticky))
            {
                return (Describe(step.Directory, directory, ""), null, 0);
            }

            if (type == FuseMagic)
            {
                return ($"{step.Directory} (on a FUSE file system, whose owners and modes are what its server says)", null, 0);
            }

            if (step.Entry is not { } entry)
            {
                continue;
            }

            if (EntryProblem(entry, step.Directory, sticky && (directory.Mode & GroupOrOthersWrite) != 0, out var found) is { } problem)
            {
                return (problem, null, 0);
            }

            // A directory is only a way through: a walk that stopped at its bounds there never reached the file.
            file = found.Type is FileStatus.SymbolicLink or FileStatus.Directory ? null : entry;
            owner = found.Owner;
        }

        return (null, file, owner);
    }

    private static string? EntryProblem(string entry, string directory, bool inOpenStickyDirectory, out FileStatus found)
    {
        if (Examine(entry) is not { } status)
        {
            found = default;
            return $"{entry} (cannot be examined, so counted as open)";
        }

        found = status;
        if (status.Type == FileStatus.SymbolicLink)
        {
            return status.Owner != 0 ? Describe(entry, status, ", a link whose owner chose where it leads") : null;
        }

        if (inOpenStickyDirectory && status.Owner != 0)
        {
            return Describe(entry, status, $", in sticky {directory}");
        }

        if (status.Type != FileStatus.Directory && status.Links > 1)
        {
            return Describe(entry, status, $", {status.Links} names: another may be someone else's");
        }

        return status.Type != FileStatus.Directory && FileSystemType(entry) == FuseMagic
            ? $"{entry} (on a FUSE file system, whose owners and modes are what its server says)"
            : null;
    }

    // The entry's own status (a link is not followed), or null when it cannot be examined.
    private static FileStatus? Examine(string path) =>
        FileStatus.Get(FileStatus.AtCurrentDirectory, path, FileStatus.AtSymlinkNoFollow, Fields, out var status) == 0 && (status.Mask & Fields) == Fields
            ? status
            : null;

    // statfs's f_type, the first field of struct statfs: a long on the 64-bit architectures the package is built for
    // (linux-x64; arm64 has the same layout); null when it fails.
    private static unsafe long? FileSystemType(string path)
    {
        var buffer = stackalloc long[32];
        return StatFs(path, buffer) == 0 ? buffer[0] : null;
    }

    private static string Describe(string path, FileStatus status, string what) =>
        $"{path} (owner {UserDatabase.Describe(status.Owner)}, gid {status.Group}, mode {status.OctalMode}{what})";

    [LibraryImport("libc", EntryPoint = "statfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int StatFs(string path, long* buffer);
}
