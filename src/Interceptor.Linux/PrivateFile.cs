using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Interceptor.Core.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>A file an option names that must be the daemon's user's alone, refused with a message naming the problem.</summary>
public sealed class PrivateFileException(string message) : Exception(message);

/// <summary>
/// Reads a secret an option names (relay logins, the metrics endpoint's token): a regular file, not a symbolic link,
/// owned by the daemon's user, that neither group nor others may read, write or execute, and no larger than its kind
/// ever is. Messages name the file and every problem with what fixes it, never the file's contents.
/// </summary>
public static partial class PrivateFile
{
    private const uint Fields = FileStatus.TypeField | FileStatus.ModeField | FileStatus.OwnerField | FileStatus.SizeField;
    private const ushort GroupOrOthers = 0x3F;
    private const ushort OwnerRead = 0x100;
    private const ushort GroupOrOthersRead = 0x24;

    // Not constants: the values differ between architectures (O_NOFOLLOW is 0x20000 on x86-64, 0x8000 on arm64). The
    // first open only locates the file (no driver's open runs, no FIFO gains a reader); a link at the path gives a
    // descriptor of the link itself, refused by its type. The second reopens that very file through /proc/thread-self/fd
    // (the calling thread's descriptor table), so nothing swapped in at the path meanwhile is opened; O_NONBLOCK is
    // kept in case a FIFO is met all the same.
    private static int LocateFlags => LibC.O_PATH | LibC.O_NOFOLLOW | LibC.O_CLOEXEC;

    private static int ReopenFlags => LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC;

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
        using var located = Locate(path, key, out var found);
        AfterLocating?.Invoke(path);
        var fd = Open($"/proc/thread-self/fd/{located.DangerousGetHandle()}", ReopenFlags);
        if (fd < 0)
        {
            throw new PrivateFileException(Unopened(path, Marshal.GetLastPInvokeError(), found, owner, key, contents));
        }

        // Judged again on the descriptor that reads: a chmod or chown since the first look counts.
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var status = StatOpened(handle, path);
        var problem = Problem(path, status, owner, key, contents, opened: true)
            ?? (status.Length > maxBytes ? $"{path}: {status.Length} bytes is more than {kind} holds ({maxBytes} at most)" : null);
        if (problem is not null)
        {
            throw new PrivateFileException(problem);
        }

        try
        {
            return ReadAtMost(handle, path, status.Length);
        }
        catch (IOException e)
        {
            throw new PrivateFileException($"{path}: cannot be read: {e.Message}");
        }
    }

    /// <summary>Runs between the first look and the reopen, on this thread only (tests: a swap at the path then).</summary>
    [ThreadStatic]
    internal static Action<string>? AfterLocating;

    // A descriptor that only locates the file, and its status: a device, a FIFO, a socket or a link is refused before
    // anything opens it for reading (a device's driver would run its open: a watchdog's arms the timer).
    private static SafeFileHandle Locate(string path, string key, out FileStatus status)
    {
        var fd = Open(path, LocateFlags);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var hint = errno == LibC.EACCES ? "; the daemon's user must be able to search every directory on the path"
                : errno == LibC.ELOOP ? " (a link among the directories on the path loops or leads through too many links)"
                : "";
            throw new PrivateFileException($"{path}: cannot be read: {Marshal.GetPInvokeErrorMessage(errno)}{hint}{SandboxHint(path, errno)}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            status = StatOpened(handle, path);
            return TypeProblem(path, status.Type, key) is { } problem ? throw new PrivateFileException(problem) : handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    // A file root sees and the daemon does not: the packaged unit hides /home, /root and /run/user (ProtectHome=yes) and
    // gives the daemon a /tmp and /var/tmp of its own (PrivateTmp=yes). Said as a condition: a drop-in may lift either,
    // and a check run outside the unit cannot know.
    private static string SandboxHint(string path, int errno)
    {
        string[] hidden = ["/home/", "/root/", "/run/user/", "/tmp/", "/var/tmp/"];
        return (errno == LibC.ENOENT || errno == LibC.EACCES) && hidden.Any(d => path.StartsWith(d, StringComparison.Ordinal))
            ? " (under the packaged unit the daemon does not see /home, /root or /run/user, and has a /tmp and /var/tmp of its own: ProtectHome=yes, PrivateTmp=yes)"
            : "";
    }

    // What the reopen's error leaves unsaid, from the located file's status: EACCES for a file the daemon's user may not
    // read (root's file, a mode without the owner's read bit).
    private static string Unopened(string path, int errno, FileStatus status, uint owner, string key, string contents)
    {
        if (errno == LibC.EACCES && Problem(path, status, owner, key, contents, opened: false) is { } problem)
        {
            return problem;
        }

        if (errno == LibC.EACCES)
        {
            // Only a check made for another user gets here: the daemon's user could open a file whose owner and mode suit it.
            return $"{path}: cannot be read by {UserDatabase.Describe(UserDatabase.EffectiveUid)} to check the rest, though its owner and mode are right for "
                + $"the daemon's user ({UserDatabase.Describe(owner)}); run check-config as root or as that user";
        }

        // ENOENT: /proc is not mounted where this runs (the daemon reads it for every connection's owner as well).
        var hint = errno == LibC.ENOENT ? " (reopening it through /proc/thread-self/fd, which needs /proc mounted)" : "";
        return $"{path}: cannot be read: {Marshal.GetPInvokeErrorMessage(errno)}{hint}";
    }

    // Every problem of the file at once, each with its fix, so that one restart is enough. Root's file, shut to others, is
    // as trusted as the daemon's own when the daemon itself opened it (a drop-in's CAP_DAC_READ_SEARCH); open to others, it
    // was opened through its loose mode, which the chmod takes away, so the chown is named with it. A check made for
    // another user (check-config --daemon-user) cannot know the daemon's capabilities, and says it could not read the file.
    private static string? Problem(string path, FileStatus status, uint owner, string key, string contents, bool opened)
    {
        if (TypeProblem(path, status.Type, key) is { } notAFile)
        {
            return notAFile;
        }

        var loose = (status.Mode & GroupOrOthers) != 0;
        var owned = status.Owner == owner || (status.Owner == 0 && !loose && opened && UserDatabase.EffectiveUid == owner);
        var problems = new List<string>();
        var fixes = new List<string>();
        var ownerName = UserDatabase.NameForMessage(owner) ?? owner.ToString(CultureInfo.InvariantCulture);
        if (!owned)
        {
            var daemon = $"the daemon's user ({UserDatabase.Describe(owner)})";
            problems.Add(status.Owner != 0 ? $"is owned by {UserDatabase.Describe(status.Owner)}, not by {daemon}, so its owner may read or change {contents} (keep it out of directories the owner may write)"
                : loose ? $"is owned by {UserDatabase.Describe(0)}, not by {daemon}"
                : $"is owned by {UserDatabase.Describe(0)}, which keeps {daemon} from reading it");
            fixes.Add($"chown {ShellWord.Quote(ownerName)} {ShellWord.Quote(path)}");
        }

        if (loose)
        {
            // A mode that let others read it has let them, for all anyone knows: shutting it does not take a copy back.
            problems.Add((status.Mode & GroupOrOthersRead) != 0
                ? $"mode {status.OctalMode} lets others than the daemon's user read {contents} (they may have already: change {contents} as well)"
                : $"mode {status.OctalMode} lets others than the daemon's user write or run it (check what it holds, or make it anew)");
            fixes.Add($"chmod 600 {ShellWord.Quote(path)}");
        }
        else if ((status.Mode & OwnerRead) == 0)
        {
            problems.Add(owned ? $"mode {status.OctalMode} does not let its owner, the daemon's user, read it" : $"mode {status.OctalMode} does not let its owner read it");
            fixes.Add($"chmod 600 {ShellWord.Quote(path)}");
        }

        return problems.Count == 0 ? null
            : $"{path}: {string.Join(", and ", problems)}; {PathCustody.Fix(path, string.Join(" && ", fixes), $"give it owner {ownerName} and mode 0600", owner)}";
    }

    private static string? TypeProblem(string path, ushort type, string key) => type switch
    {
        FileStatus.RegularFile => null,
        FileStatus.SymbolicLink => $"{path}: is a symbolic link; {key} must name the file itself",
        _ => $"{path}: is {TypeName(type)}, not a regular file; {key} must name a file",
    };

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

    // The status of the file opened, not of the path a moment before: no swap in between can pass the checks.
    private static FileStatus StatOpened(SafeFileHandle handle, string path) =>
        Statx((int)handle.DangerousGetHandle(), out var failure) ?? throw new PrivateFileException($"{path}: cannot be examined: {failure}");

    // A file system may leave out what was asked for (the mask says what it filled): zeros would read as root's file of
    // mode 0000.
    private static FileStatus? Statx(int descriptor, out string? failure)
    {
        var errno = FileStatus.Get(descriptor, "", FileStatus.AtEmptyPath, Fields, out var status);
        if (errno != 0)
        {
            failure = Marshal.GetPInvokeErrorMessage(errno);
            return null;
        }

        var missing = Fields & ~status.Mask;
        if (missing != 0)
        {
            string[] names = ["type", "mode", "owner", "size"];
            uint[] bits = [FileStatus.TypeField, FileStatus.ModeField, FileStatus.OwnerField, FileStatus.SizeField];
            failure = $"its file system does not report its {string.Join(" and ", names.Where((_, i) => (missing & bits[i]) != 0))}; keep it on a local file system";
            return null;
        }

        failure = null;
        return status;
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

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);
}
