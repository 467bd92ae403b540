using Interceptor.Core.Text;

namespace Interceptor.Linux;

/// <summary>
/// Whether anyone but root and the daemon's user could change where a path leads. A fix printed for an admin to paste
/// as root (<c>chown</c>, <c>chmod</c>) follows the path when it runs, not when the message was written: where a customer
/// may rename the entries of a directory the lookup passes (her home, a group-writable directory), she swaps a link in
/// meanwhile and root's <c>chmod a+r</c> lands on /etc/shadow. Such a fix is then not printed; the file is to be moved.
/// </summary>
public static class PathCustody
{
    private const uint Fields = FileStatus.TypeField | FileStatus.ModeField | FileStatus.OwnerField | FileStatus.GroupField;
    private const ushort GroupOrOthersWrite = 0x12;
    private const ushort Sticky = 0x200;

    /// <summary>
    /// The first place on the lookup of <paramref name="path"/> that a user other than root and <paramref name="trusted"/>
    /// may change, described ("/home/alice (owner uid 1001 (alice), gid 1001, mode 0755)"); null when there is none.
    /// A directory is open when another user owns it or when group or others may write it (with an ACL, its mode's group
    /// bits are the ACL's mask, which bounds what any named user or group gets); in a sticky directory such as /tmp only an
    /// entry's owner may rename it, so there the entry the lookup passes is judged instead. What cannot be examined counts as open: this decides whether root is told to run something.
    /// </summary>
    public static string? OpenPlace(string path, uint trusted)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        foreach (var step in PathLookup.Steps(path))
        {
            if (Examine(step.Directory, FileStatus.Directory) is not { } directory)
            {
                return $"{step.Directory} (cannot be examined)";
            }

            if (!Trusted(directory.Owner, trusted))
            {
                return Describe(step.Directory, directory, "");
            }

            if ((directory.Mode & GroupOrOthersWrite) != 0)
            {
                if ((directory.Mode & Sticky) == 0)
                {
                    return Describe(step.Directory, directory, "");
                }

                // Sticky: the directory's owner (judged above) and the entry's may rename the entry, nobody else.
                if (step.Entry is { } entry && Examine(entry, type: null) is var found && (found is null || !Trusted(found.Value.Owner, trusted)))
                {
                    return found is { } status ? Describe(entry, status, $", in sticky {step.Directory}") : $"{entry} (cannot be examined)";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The clause that ends a problem's message: <c>run COMMAND</c> when the path is root's and the daemon's user's alone to
    /// change (<see cref="OpenPlace"/>), else why no command is given and where the file should go instead.
    /// </summary>
    /// <param name="path">The file the command changes.</param>
    /// <param name="trusted">The daemon's user, besides root.</param>
    /// <param name="command">The command, its words quoted (<see cref="ShellWord"/>).</param>
    /// <param name="wanted">What the file should be once moved, e.g. "owned by smtp-interceptor with mode 0600".</param>
    public static string Fix(string path, uint trusted, string command, string wanted) =>
        OpenPlace(path, trusted) is { } place
            ? $"no command is given, as {place} may be changed by others than root and the daemon's user, who could swap in a link "
              + $"for it to follow; move the file into a directory only root may change, such as /etc/smtp-interceptor, {wanted}"
            : $"run {command}";

    private static bool Trusted(uint owner, uint trusted) => owner == 0 || owner == trusted;

    // The entry's own status (a link is not followed), or null when it cannot be examined or is not of the type expected.
    private static FileStatus? Examine(string path, ushort? type) =>
        FileStatus.Get(FileStatus.AtCurrentDirectory, path, FileStatus.AtSymlinkNoFollow, Fields, out var status) == 0
            && (status.Mask & Fields) == Fields && (type is null || status.Type == type)
            ? status
            : null;

    private static string Describe(string path, FileStatus status, string where) =>
        $"{path} (owner {UserDatabase.Describe(status.Owner)}, gid {status.Group}, mode {status.OctalMode}{where})";
}
