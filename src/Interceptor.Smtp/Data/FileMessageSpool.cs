using Microsoft.Win32.SafeHandles;

namespace Interceptor.Smtp.Data;

/// <summary>
/// The spool of a pipeline that needs whole messages: each message in memory up to <see cref="MemoryBytes"/>, then in a
/// private temporary file (0600) in a directory only the daemon's user can enter (0700). The file is unlinked as soon as
/// it is open, so it disappears with its descriptor on every path — disposal, an exception, even SIGKILL — and no other
/// process can open it by name. No spool grows beyond <see cref="MaxBytes"/> (the largest message size limit).
/// </summary>
public sealed class FileMessageSpoolFactory : IMessageSpoolFactory
{
    /// <summary>A message this small is kept in memory: most mail is, and it saves a file per message.</summary>
    public const int DefaultMemoryBytes = 64 * 1024;

    private const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public FileMessageSpoolFactory(string directory, long maxBytes, int memoryBytes = DefaultMemoryBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(memoryBytes);
        Directory = directory;
        MaxBytes = maxBytes;
        MemoryBytes = (int)Math.Min(memoryBytes, maxBytes);
        EnsurePrivateDirectory(directory);
    }

    /// <summary>Where the temporary files are made (and at once unlinked).</summary>
    public string Directory { get; }

    public long MaxBytes { get; }

    public int MemoryBytes { get; }

    public ValueTask<IMessageSpool> CreateAsync(MessageContext message, CancellationToken token) =>
        ValueTask.FromResult<IMessageSpool>(new FileMessageSpool(this));

    /// <summary>Creates the directory 0700, or makes an existing one so; refuses one that is a link or not ours to keep private.</summary>
    private static void EnsurePrivateDirectory(string directory)
    {
        var info = System.IO.Directory.CreateDirectory(directory, PrivateDirectory);
        if (info.LinkTarget is not null)
        {
            throw new IOException($"spool directory {directory} is a symbolic link; refusing to write messages there");
        }

        if (info.UnixFileMode != PrivateDirectory)
        {
            File.SetUnixFileMode(directory, PrivateDirectory);
        }
    }

    /// <summary>Opens a fresh file (never an existing one: O_EXCL, 0600) and unlinks it; the handle is all that remains.</summary>
    internal SafeFileHandle OpenUnlinkedFile()
    {
        var path = Path.Combine(Directory, $"msg-{Guid.NewGuid():N}.tmp");
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.None);
        try
        {
            File.SetUnixFileMode(handle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        finally
        {
            File.Delete(path);
        }

        return handle;
    }
}

/// <summary>One message: a memory buffer that overflows into an unlinked file.</summary>
internal sealed class FileMessageSpool(FileMessageSpoolFactory factory) : IMessageSpool
{
    private byte[] _memory = [];
    private SafeFileHandle? _file;

    public long Length { get; private set; }

    /// <summary>True once the message outgrew memory and lives in the file.</summary>
    public bool OnDisk => _file is not null;

    public async ValueTask AppendAsync(ReadOnlyMemory<byte> bytes, CancellationToken token)
    {
        ObjectDisposedException.ThrowIf(_memory is null, this);
        if (Length + bytes.Length > factory.MaxBytes)
        {
            // The DATA filter refuses a message over its limit before this; a second wall, never a full disk.
            throw new IOException($"message spool full ({factory.MaxBytes} bytes)");
        }

        if (_file is null && Length + bytes.Length <= factory.MemoryBytes)
        {
            if (_memory.Length < Length + bytes.Length)
            {
                Array.Resize(ref _memory, (int)Math.Min(factory.MemoryBytes, Math.Max(Length + bytes.Length, Math.Max(4096, _memory.Length * 2L))));
            }

            bytes.CopyTo(_memory.AsMemory((int)Length));
            Length += bytes.Length;
            return;
        }

        if (_file is null)
        {
            _file = factory.OpenUnlinkedFile();
            await RandomAccess.WriteAsync(_file, _memory.AsMemory(0, (int)Length), 0, token);
            _memory = [];
        }

        await RandomAccess.WriteAsync(_file, bytes, Length, token);
        Length += bytes.Length;
    }

    public Stream OpenRead() => _file is null
        ? new MemoryStream(_memory, 0, (int)Length, writable: false)
        : new SpoolFileReader(_file, Length);

    public ValueTask DisposeAsync()
    {
        _file?.Dispose();
        _file = null;
        _memory = null!;
        return ValueTask.CompletedTask;
    }

    /// <summary>Reads the unlinked file from its start by offset (the handle has no shared position to disturb).</summary>
    private sealed class SpoolFileReader(SafeFileHandle file, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = RandomAccess.Read(file, buffer[..(int)Math.Min(buffer.Length, length - _position)], _position);
            _position += read;
            return read;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await RandomAccess.ReadAsync(file, buffer[..(int)Math.Min(buffer.Length, length - _position)], _position, cancellationToken);
            _position += read;
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
