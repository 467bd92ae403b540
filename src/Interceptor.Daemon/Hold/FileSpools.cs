using Interceptor.Smtp.Data;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// Spools for a pipeline whose stage needs the whole message (Suspension.Action=Hold): one private file per message in
/// <c>Hold.Directory/spool</c> (0700, the daemon's), written as the client sends it and deleted when the transfer ends.
/// Memory stays bounded whatever the size. Used until the scan work's spool (issue 16) is wired in its place.
/// </summary>
public sealed class FileSpools : IMessageSpoolFactory
{
    private readonly string _directory;

    /// <summary>Creates the directory, and removes spool files a killed daemon left behind.</summary>
    public FileSpools(string directory)
    {
        _directory = directory;
        Directory.CreateDirectory(directory, HoldDirectory.Mode);
        foreach (var stale in Directory.EnumerateFiles(directory))
        {
            File.Delete(stale);
        }
    }

    public ValueTask<IMessageSpool> CreateAsync(MessageContext message, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(message);
        var path = Path.Combine(_directory, message.TransactionId + ".spool");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.Read,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            Options = FileOptions.Asynchronous | FileOptions.DeleteOnClose,
        };
        return ValueTask.FromResult<IMessageSpool>(new FileSpool(new FileStream(path, options), path));
    }

    private sealed class FileSpool(FileStream file, string path) : IMessageSpool
    {
        public long Length => file.Length;

        public async ValueTask AppendAsync(ReadOnlyMemory<byte> bytes, CancellationToken token) => await file.WriteAsync(bytes, token);

        public Stream OpenRead()
        {
            file.Flush();
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }

        public ValueTask DisposeAsync() => file.DisposeAsync();
    }
}
