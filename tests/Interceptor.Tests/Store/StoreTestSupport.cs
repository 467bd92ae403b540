using System.Diagnostics;
using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Store;

/// <summary>A throwaway state directory per test, and records to fill it with.</summary>
internal sealed class StoreTestDirectory : IDisposable
{
    public StoreTestDirectory(string? parent = null)
    {
        Path = System.IO.Path.Combine(parent ?? System.IO.Path.GetTempPath(), $"store-test-{Guid.NewGuid():N}");
    }

    /// <summary>Not created: Open must create it.</summary>
    public string Path { get; }

    public string Database => System.IO.Path.Combine(Path, SqliteStateStore.FileName);

    public SqliteStateStore Open() => SqliteStateStore.Open(Path, TimeProvider.System, NullLogger.Instance);

    internal SqliteStateStore Open(StoreTuning tuning) => SqliteStateStore.Open(Path, TimeProvider.System, NullLogger.Instance, tuning);

    public void Dispose()
    {
        if (!Directory.Exists(Path))
        {
            return;
        }

        // Undo whatever a test did to make things unwritable, or the directory cannot be removed.
        foreach (var entry in Directory.EnumerateFileSystemEntries(Path).Append(Path))
        {
            Chattr.TryRun("-i", entry);
            File.SetUnixFileMode(entry, File.GetUnixFileMode(entry) | UnixFileMode.UserWrite | UnixFileMode.UserRead | (Directory.Exists(entry) ? UnixFileMode.UserExecute : 0));
        }

        Directory.Delete(Path, recursive: true);
    }
}

/// <summary>chattr, for the cases where root ignores file modes.</summary>
internal static class Chattr
{
    public static bool IsRoot => Environment.IsPrivilegedProcess;

    /// <summary>Runs chattr; false when it is missing or the filesystem or our privileges do not allow it.</summary>
    public static bool TryRun(string flags, string path)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("chattr", [flags, path])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            });
            if (process is null)
            {
                return false;
            }

            process.WaitForExit();
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

internal static class Records
{
    public static readonly DateTimeOffset Base = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);

    public static TransactionEvent Transaction(string id, DateTimeOffset started, uint uid = 1001, TransactionOutcome outcome = TransactionOutcome.Delivered, int recipients = 2, long size = 4096) =>
        new(id, started, uid, $"user{uid}", $"sender@{uid}.example", recipients, size, "203.0.113.5:25", "203.0.113.5:25", "250 2.0.0 ok", TimeSpan.FromMilliseconds(123.4567))
        {
            Outcome = outcome,
            Process = $"pid=42 exe=/usr/bin/php8.2 cwd=/home/user{uid}/site",
        };

    public static PolicyRefusal Refusal(DateTimeOffset time, uint uid = 1001, RefusalKind kind = RefusalKind.MessagesPerHour) =>
        new(time, uid, $"user{uid}", kind, "200/200");

    public static Suspension Suspension(uint uid, SuspensionSource source = SuspensionSource.Admin) =>
        new(uid, $"user{uid}", "spam from wp-content/uploads", Base, source);
}
