namespace Interceptor.Smtp.IO;

/// <summary>
/// The stream a TLS handshake runs over (SslStream's inner stream), which moves the handshake's work off the thread
/// that completed the read. The daemon runs socket completions on the socket engine's polling threads, each serving many
/// sessions (see the daemon's SocketThreads); SslStream continues its handshake (key exchange, signing, certificate
/// checks: a millisecond or more) wherever its read completed. While <see cref="Handshaking"/>, a read that had to wait
/// resumes on the thread pool instead; afterwards reads pass straight through (a record's decryption is cheap).
/// </summary>
public sealed class HandshakeStream(Stream inner, bool leaveInnerOpen) : Stream
{
    /// <summary>Set to false once the handshake is done.</summary>
    public bool Handshaking { get; set; } = true;

    public override bool CanRead => inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => inner.CanWrite;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = inner.ReadAsync(buffer, cancellationToken);
        return !Handshaking || read.IsCompleted ? read : ResumeOnThreadPoolAsync(read);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !leaveInnerOpen)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!leaveInnerOpen)
        {
            await inner.DisposeAsync();
        }

        await base.DisposeAsync();
    }

    private static async ValueTask<int> ResumeOnThreadPoolAsync(ValueTask<int> read)
    {
        var count = await read.ConfigureAwait(false);

        // No context here (the awaits above and in SslStream do not capture one): Yield queues to the thread pool.
        await Task.Yield();
        return count;
    }
}
