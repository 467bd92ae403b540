using Microsoft.Win32.SafeHandles;

namespace Interceptor.Core.Options;

/// <summary>A file an option names that must be the daemon's user's alone, refused with a message naming the problem.</summary>
public sealed class PrivateFileException(string message) : Exception(message);

/// <summary>
/// Reads a secret an option names (relay logins, the metrics endpoint's token): the file itself, not a symbolic link, that
/// neither group nor others may read, write or execute, and no larger than its kind ever is. Messages name the file and
/// the problem, never its contents.
/// </summary>
public static class PrivateFile
{
    /// <param name="path">The file.</param>
    /// <param name="key">The option naming it, e.g. <c>Relay.CredentialsFile</c>.</param>
    /// <param name="contents">What a loose mode would give away, e.g. "the relay logins".</param>
    /// <param name="kind">What the file is, for the size message, e.g. "a credentials file".</param>
    /// <param name="maxBytes">The most such a file holds.</param>
    /// <exception cref="PrivateFileException">Missing, a link, readable by others, too large.</exception>
    public static string ReadAllText(string path, string key, string contents, string kind, long maxBytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        SafeFileHandle handle;
        try
        {
            if (new FileInfo(path).LinkTarget is not null)
            {
                throw new PrivateFileException($"{path}: is a symbolic link; {key} must name the file itself");
            }

            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PrivateFileException($"{path}: cannot be read: {e.Message}");
        }

        using (handle)
        {
            try
            {
                return ReadPrivate(handle, path, contents, kind, maxBytes);
            }
            catch (IOException e)
            {
                throw new PrivateFileException($"{path}: cannot be read: {e.Message}");
            }
        }
    }

    private static string ReadPrivate(SafeFileHandle handle, string path, string contents, string kind, long maxBytes)
    {
        // The mode of the file opened, not of the path a moment before: no swap in between can pass the check.
        var mode = File.GetUnixFileMode(handle);
        const UnixFileMode othersMayTouch = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        if ((mode & othersMayTouch) != 0)
        {
            throw new PrivateFileException($"{path}: mode {Octal(mode)} lets others than the daemon's user read {contents}; run chmod 600 {path}");
        }

        var length = RandomAccess.GetLength(handle);
        if (length > maxBytes)
        {
            throw new PrivateFileException($"{path}: {length} bytes is more than {kind} holds ({maxBytes} at most)");
        }

        // Read at most one byte past the size seen: a file that grows meanwhile is refused, not read whole.
        var bytes = new byte[length + 1];
        var read = 0;
        for (int n; read < bytes.Length && (n = RandomAccess.Read(handle, bytes.AsSpan(read), read)) > 0;)
        {
            read += n;
        }

        return read > length
            ? throw new PrivateFileException($"{path}: grew while being read (past {length} bytes); check that nothing else writes it")
            : new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetString(bytes, 0, read).TrimStart('\uFEFF');
    }

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xFFF, 8).PadLeft(3, '0');
}
