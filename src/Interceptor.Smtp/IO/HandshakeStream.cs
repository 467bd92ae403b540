using System.Runtime.CompilerServices;

namespace Interceptor.Smtp.IO;

/// <summary>
/// The stream a TLS handshake runs over (SslStream's inner stream), which moves the handshake's work off the thread
/// that completed the read. The daemon runs socket completions on the socket engine's polling threads, each serving many
/// sessions (see the daemon's SocketThreads); SslStream continues its handshake (key exchange, signing, certificate
/// checks, a certificate minted for the client: a millisecond or more) wherever its read completed. While
/// <see cref="Handshaking"/>, every read resumes in the blocking work of the session that started the handshake (its
/// context as the first read found it: the fair-share scheduler's own threads, in its user's turn, charged to that user),
/// or on the thread pool when there is none (outside a session); afterwards reads pass straight through (a record's
/// decryption is cheap). The handshake's start (before its first read) is the caller's: it runs as
/// <see cref="Core.Threading.BlockingWork"/>.
/// </summary>
public sealed class HandshakeStream(Stream inner, bool leaveInnerOpen) : Stream
{
    // The session's context, taken at the first read (SslStream's own awaits do not keep it): every later read of the
    // handshake resumes there too, so that none of its work runs uncharged on the pool.
    private SynchronizationContext? _resumeIn;
    private bool _firstReadDone;

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
        if (!_firstReadDone)
        {
            _firstReadDone = true;

            // The session's context where the read is made; else its lane, which travels with the execution context (a
            // first read made where an earlier write completed, on a socket thread with no context current).
            _resumeIn = SynchronizationContext.Current is Core.Threading.IBlockingWorkContext
                ? SynchronizationContext.Current
                : Core.Threading.StepLanes.Current as SynchronizationContext;
        }

        var count = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);

        // Not where the read completed (a socket thread, or the caller at once), whatever context is current there.
        await BackToSession();
        return count;
    }

    /// <summary>
    /// Goes on in the session's blocking work (as a read does), or on the thread pool outside a session: for the
    /// handshake's own callbacks that waited for something that completed elsewhere (a certificate minted on the pool).
    /// An awaitable, not an async method: one of those would let the caller go on where it is, when the session's
    /// thread ran the posted step before the caller looked.
    /// </summary>
    public PostTo BackToSession() => new(_resumeIn);

    /// <summary>
    /// Goes on in <see cref="Context"/>, always queued (never inline, even when already there), and runs there with no
    /// context current: SslStream awaits its reads with ConfigureAwait(false), and .NET runs such a continuation inline
    /// only where no context is current (else it goes to the pool, which is what this is for not doing). Without a
    /// context, on the thread pool.
    /// </summary>
    public readonly struct PostTo(SynchronizationContext? context) : ICriticalNotifyCompletion
    {
        private SynchronizationContext? Context => context;

        public PostTo GetAwaiter() => this;

        public bool IsCompleted => false;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation)
        {
            if (Context is null)
            {
                ThreadPool.QueueUserWorkItem(static state => state(), continuation, preferLocal: false);
                return;
            }

            // The caller's execution context goes along, as OnCompleted promises (UnsafeOnCompleted need not).
            var flowed = ExecutionContext.Capture();
            Queue(Context, flowed is null ? continuation : () => ExecutionContext.Run(flowed, static state => ((Action)state!)(), continuation));
        }

        // An async method's continuation restores its own execution context: the pool need not capture one.
        public void UnsafeOnCompleted(Action continuation)
        {
            if (Context is null)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static state => state(), continuation, preferLocal: false);
                return;
            }

            Queue(Context, continuation);
        }

        // A session's lane queues for its turn and never runs the step where it is asked (its context's Post may, when
        // the session is not in blocking work); any other context gets a Post.
        private static void Queue(SynchronizationContext context, Action continuation)
        {
            if (context is Core.Threading.IStepLane lane)
            {
                lane.Queue(() => Run(continuation));
                return;
            }

            context.Post(Run, continuation);
        }

        private static void Run(object? state)
        {
            var current = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(null);
            try
            {
                ((Action)state!)();
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(current);
            }
        }

    }
}
