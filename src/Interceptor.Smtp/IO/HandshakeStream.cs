namespace Interceptor.Smtp.IO;

/// <summary>
/// The stream a TLS handshake runs over (SslStream's inner stream), which moves the handshake's work off the thread
/// that completed the read. The daemon runs socket completions on the socket engine's polling threads, each serving many
/// sessions (see the daemon's SocketThreads); SslStream continues its handshake (key exchange, signing, certificate
/// checks: a millisecond or more) wherever its read completed. While <see cref="Handshaking"/>, every read resumes on the
/// thread pool instead, whoever completed it; afterwards reads pass straight through (a record's decryption is cheap).
/// The handshake's start (before its first read) is the caller's: it runs as <see cref="Core.Threading.BlockingWork"/>.
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

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Handshaking ? ReadThenLeaveAsync(buffer, cancellationToken) : inner.ReadAsync(buffer, cancellationToken);

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

    private async ValueTask<int> ReadThenLeaveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var count = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);

        // Whoever completed the read (a socket thread, or the caller at once) and whatever context is current there.
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        return count;
    }
}
