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
