using Interceptor.Core.Policy;
using Microsoft.Data.Sqlite;

namespace Interceptor.Store;

/// <summary>
/// Turns whatever went wrong into a <see cref="StoreUnavailableException"/> whose message names the file and a cause an
/// admin can act on; SQLite's own texts ("disk I/O error") do not say which file or why.
/// </summary>
internal static class StoreFailures
{
    // Primary result codes from sqlite3.h; Microsoft.Data.Sqlite exposes them as plain ints.
    private const int SqlitePerm = 3;
    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;
    private const int SqliteReadOnly = 8;
    private const int SqliteIoErr = 10;
    private const int SqliteCorrupt = 11;
    private const int SqliteFull = 13;
    private const int SqliteCantOpen = 14;
    private const int SqliteNotADb = 26;

    public static StoreUnavailableException Create(string path, string cause, Exception? inner = null)
    {
        var message = $"state store {path}: {cause}";
        return inner is null ? new StoreUnavailableException(message) : new StoreUnavailableException(message, inner);
    }

    public static StoreUnavailableException From(string path, Exception exception) => exception switch
    {
        StoreUnavailableException already => already,
        SqliteException sqlite => Create(path, Describe(sqlite), sqlite),
        UnauthorizedAccessException denied => Create(path, $"permission denied ({denied.Message})", denied),
        InvalidDataException data => Create(path, $"unreadable data: {data.Message}", data),
        DirectoryNotFoundException missing => Create(path, $"directory not found ({missing.Message})", missing),
        IOException io => Create(path, $"I/O error: {io.Message}", io),
        TaskSchedulerException thread => Create(path, $"no thread for the read ({thread.InnerException?.Message ?? thread.Message})", thread),
        _ => Create(path, $"unexpected failure: {exception.GetType().Name}: {exception.Message}", exception),
    };

    public static string Describe(SqliteException exception)
    {
        var cause = exception.SqliteErrorCode switch
        {
            SqlitePerm => "permission denied",
            SqliteBusy or SqliteLocked => "database is locked by another process (busy timeout expired)",
            SqliteReadOnly => "read-only: the file, its directory or the filesystem cannot be written",
            SqliteIoErr => "I/O error: disk failure, read-only filesystem, immutable (chattr +i) or removed file",
            SqliteCorrupt => "the database file is corrupt",
            SqliteFull => "disk full (or the database reached its size limit)",
            SqliteCantOpen => "cannot open the database file: missing, permission denied or read-only directory",
            SqliteNotADb => "not an SQLite database: the file is corrupt or belongs to something else",
            _ => "SQLite failure",
        };
        return $"{cause} [{exception.Message.TrimEnd('.')}, extended code {exception.SqliteExtendedErrorCode}]";
    }
}
