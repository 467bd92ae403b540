using Interceptor.Linux;

namespace Interceptor.Daemon.Hold;

/// <summary>Hold.Directory is unusable: the daemon refuses to start (exit 3) rather than hold mail it could lose or leak.</summary>
public sealed class HoldDirectoryException(string message) : Exception(message);

/// <summary>
/// Hold.Directory holds customers' whole messages: the daemon's own directory, mode 0700. Created so when missing; an
/// existing one owned by someone else or open to the group or others is refused (not repaired: someone made it so, and
/// may already read what it holds).
/// </summary>
public static class HoldDirectory
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <exception cref="HoldDirectoryException">Why it cannot be used, naming the path and the key.</exception>
    public static void Prepare(string directory)
    {
        try
        {
            if (File.Exists(directory))
            {
                throw new HoldDirectoryException($"Hold.Directory {directory} is a file, not a directory");
            }

            if (!Directory.Exists(directory))
            {
                Directory.CreateDirectory(directory, Mode);
                DurableFiles.SyncDirectory(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(directory))!);
            }

            var owner = DurableFiles.OwnerOf(directory);
            if (owner != UserDatabase.EffectiveUid)
            {
                throw new HoldDirectoryException($"Hold.Directory {directory} is owned by uid {owner}, not by the daemon (uid {UserDatabase.EffectiveUid}); held messages must be the daemon's alone");
            }

            var mode = File.GetUnixFileMode(directory);
            if ((mode & ~Mode) != 0 || (mode & Mode) != Mode)
            {
                throw new HoldDirectoryException($"Hold.Directory {directory} has mode 0{Convert.ToString((int)mode & 0xfff, 8)}; it must be 0700 (held messages are customers' mail)");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HoldDirectoryException($"Hold.Directory {directory} cannot be used: {e.Message}");
        }
    }
}
