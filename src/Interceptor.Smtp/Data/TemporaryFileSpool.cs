namespace Interceptor.Smtp.Data;

/// <summary>
/// A minimal spool on disk for the DKIM and From policy stages (issue 17): one file per message in a directory only the
/// daemon can enter (0700), created 0600 and deleted when the message is done. The scanning work (issue 16) brings the
/// full spool; this one exists so signing works on its own branch.
/// </summary>
public sealed class TemporaryFileSpoolFactory : IMessageSpoolFactory
{
    private readonly string _directory;

    public TemporaryFileSpoolFactory(string directory)
    {
        _directory = directory;
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public ValueTask<IMessageSpool> CreateAsync(MessageContext message, CancellationToken token)
    {
        var path = Path.Combine(_directory, $"{message.TransactionId}-{Guid.NewGuid():N}.eml");
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.Read,
            Options = FileOptions.Asynchronous,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        return ValueTask.FromResult<IMessageSpool>(new Spool(path, stream));
    }

    private sealed class Spool(string path, FileStream stream) : IMessageSpool
    {
        public long Length => stream.Length;

        public ValueTask AppendAsync(ReadOnlyMemory<byte> bytes, CancellationToken token) => stream.WriteAsync(bytes, token);

        public Stream OpenRead()
        {
            stream.Flush();
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }

        public async ValueTask DisposeAsync()
        {
            await stream.DisposeAsync();
            File.Delete(path);
        }
    }
}
