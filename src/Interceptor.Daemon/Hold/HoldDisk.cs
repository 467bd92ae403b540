using Interceptor.Linux;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// The file operations of the hold store, each durable when it returns (the tests record their order with a fake).
/// </summary>
public interface IHoldDisk
{
    /// <summary>Creates (or truncates) the file with mode 0600, lets <paramref name="write"/> fill it, and fsyncs it.</summary>
    Task WriteFileAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken token);

    /// <summary>Renames over <paramref name="destination"/> (atomic on one file system).</summary>
    void Move(string source, string destination);

    /// <summary>fsyncs the directory, so the entries created, renamed or deleted in it are on disk.</summary>
    void SyncDirectory(string directory);

    void Delete(string path);
}

/// <summary>The real disk.</summary>
public sealed class HoldDisk : IHoldDisk
{
    public static readonly HoldDisk Instance = new();

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public async Task WriteFileAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(write);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = Private, Options = FileOptions.Asynchronous };
        await using var file = new FileStream(path, options);
        await write(file, token);
        await file.FlushAsync(token);

        // Flush(true) is fsync: the bytes are on disk before the record that points at them is written.
        file.Flush(flushToDisk: true);
    }

    public void Move(string source, string destination) => File.Move(source, destination, overwrite: true);

    public void SyncDirectory(string directory) => DurableFiles.SyncDirectory(directory);

    public void Delete(string path) => File.Delete(path);
}
