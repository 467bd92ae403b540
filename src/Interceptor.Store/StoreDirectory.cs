namespace Interceptor.Store;

/// <summary>
/// Checks made before SQLite touches anything: SQLite reports most of these as "unable to open database file", which
/// does not tell an admin whether the directory is missing, read-only or owned by someone else.
/// </summary>
internal static class StoreDirectory
{
    private const UnixFileMode DirectoryMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute;

    private const string ProbeName = ".write-probe";

    /// <summary>The database, its WAL and shared-memory files: the daemon's (and its group's) to read, nobody else's.</summary>
    private const UnixFileMode DatabaseFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;

    /// <summary>
    /// Takes away what <paramref name="path"/> allows beyond <paramref name="allowed"/> (never adds a bit: an admin's
    /// stricter choice stays). Returns "PATH: 0777 -> 0750" when it changed something, null otherwise; a chmod that
    /// fails (not our file) is reported the same way with the reason, and the store still opens.
    /// </summary>
    public static string? Tighten(string path, UnixFileMode allowed)
    {
        if (!Path.Exists(path) || OperatingSystem.IsWindows())
        {
            return null;
        }

        var mode = File.GetUnixFileMode(path);
        var tightened = mode & allowed;
        if (tightened == mode)
        {
            return null;
        }

        try
        {
            File.SetUnixFileMode(path, tightened);
            return $"{path}: {Octal(mode)} -> {Octal(tightened)}";
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            return $"{path}: {Octal(mode)}, could not be tightened to {Octal(tightened)} ({e.Message})";
        }
    }

    /// <summary>The directory (0750 at most) and the database files (0640 at most), as <see cref="Tighten"/> reports them.</summary>
    public static IReadOnlyList<string> TightenAll(string directory, string path) =>
        [.. new[] { Tighten(directory, DirectoryMode), Tighten(path, DatabaseFileMode), Tighten(path + "-wal", DatabaseFileMode), Tighten(path + "-shm", DatabaseFileMode) }.OfType<string>()];

    private static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xfff, 8);

    public static void Prepare(string directory, string path)
    {
        if (File.Exists(directory))
        {
            throw StoreFailures.Create(path, $"{directory} is a file, not a directory");
        }

        if (!Directory.Exists(directory))
        {
            // 0750: the log holds senders and user names; the admin group may read it, nobody else.
            Directory.CreateDirectory(directory, DirectoryMode);
        }

        if (FileGuard.ReadOnlyProblem(directory) is { } readOnly)
        {
            throw StoreFailures.Create(path, readOnly);
        }

        ProbeWrite(directory, path);

        // A WAL without its database is what a crash leaves after the database was deleted; SQLite would replay its
        // pages into a new empty file and produce a corrupt store. An admin must decide.
        var wal = path + "-wal";
        if (!File.Exists(path) && File.Exists(wal) && new FileInfo(wal).Length > 0)
        {
            throw StoreFailures.Create(path, $"the database is missing but its write-ahead log {wal} remains; move or delete the -wal and -shm files");
        }

        if (Directory.Exists(path))
        {
            throw StoreFailures.Create(path, "it is a directory, not a database file");
        }

        if (File.Exists(path) && FileGuard.ReadOnlyProblem(path) is { } fileReadOnly)
        {
            throw StoreFailures.Create(path, fileReadOnly);
        }
    }

    /// <summary>Creating a file is the one test that covers permissions, read-only mounts and immutable directories alike.</summary>
    private static void ProbeWrite(string directory, string path)
    {
        var probe = Path.Combine(directory, ProbeName);
        try
        {
            using (File.Create(probe, 1, FileOptions.None))
            {
            }

            File.Delete(probe);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw StoreFailures.Create(path, $"permission denied: cannot create files in {directory} (permissions, or an immutable directory) [{ex.Message}]", ex);
        }
        catch (IOException ex)
        {
            throw StoreFailures.Create(path, $"cannot create files in {directory}: {ex.Message}", ex);
        }
    }
}
