using System.Buffers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Interceptor.Core.Threading;

namespace Interceptor.Smtp.IO;

/// <summary>How a line read from the peer ended, and what was wrong with it.</summary>
public enum LineStatus
{
    /// <summary>Terminated by CRLF, no bare CR and no NUL inside.</summary>
    Ok,

    /// <summary>Terminated by a bare LF (no CR before it).</summary>
    BareLineFeed,

    /// <summary>Terminated by CRLF but holds a bare CR or a NUL byte.</summary>
    ForbiddenByte,

    /// <summary>Longer than the limit; the rest up to the next LF was discarded.</summary>
    TooLong,

    /// <summary>The peer closed the connection.</summary>
    EndOfStream,
}

/// <summary>One line without its terminator, and how it ended.</summary>
public readonly record struct Line(LineStatus Status, string Text);

/// <summary>A line that had begun did not finish in time (a trickle), as opposed to the peer being idle.</summary>
public sealed class LineTimeoutException(TimeSpan limit)
    : TimeoutException($"a command line took longer than {limit.TotalSeconds:0} s to arrive")
{
    public TimeSpan Limit { get; } = limit;
}

/// <summary>
/// A bounded read buffer over a stream. Reads lines with a hard length limit and gives raw access to
/// buffered bytes for DATA. Memory is the buffer and nothing else, whatever the peer sends.
/// </summary>
/// <remarks>
/// The buffer is rented from the shared pool only while it holds bytes (or a read into it is under way) and returned as
/// soon as everything in it was consumed, as Kestrel does: an idle SMTP session, which waits most of its life for the
/// next command, then holds no buffer at all. With <c>waitWithoutBuffer</c> an empty reader first waits with a
/// zero-byte read (NetworkStream and SslStream complete it when bytes arrive, without a buffer) and rents only then.
/// That costs one more receive call per wait, so readers that wait only briefly for an answer they asked for (the
/// upstream's replies) leave it off: they hold no buffer between replies anyway. Over a non-blocking socket (the
/// listener makes its accepted sockets so) the reader first takes what is already there with one receive call and
/// waits only if nothing was: a command that has arrived costs one receive call instead of the zero-byte wait's peek and
/// read. That first try is made only while it pays: a fill that found nothing (the try failed, then the zero-byte wait
/// had to wait) stops it, and a zero-byte wait that completes at once (the bytes were there) starts it again. In
/// lock-step the client's next command comes a round trip after our reply, so the try found nothing in 5.5 of the 6.5
/// fills of a relayed message (bench B round, `perf record` of the receive calls): three calls for each such command
/// (the failed try, the wait's failed peek, the read) where two do.
/// </remarks>
public sealed class LineReader : IDisposable
{
    private readonly Stream _stream;
    private readonly OperationTimeout _timeout = new();
    private readonly ThreadBudget _budget = ThreadBudget.Start();
    private readonly int _bufferSize;
    private readonly bool _waitWithoutBuffer;
    private bool _tryBeforeWaiting = true;
    private byte[]? _buffer;
    private int _start;
    private int _end;
    private bool _disposed;

    public LineReader(Stream stream, int bufferSize = 16 * 1024, bool waitWithoutBuffer = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bufferSize);
        _stream = stream;
        _bufferSize = bufferSize;
        _waitWithoutBuffer = waitWithoutBuffer;
    }

    /// <summary>Bytes already received and not yet consumed.</summary>
    public ReadOnlySpan<byte> Buffered => _buffer is null ? default : _buffer.AsSpan(_start, _end - _start);

    public bool HasBufferedData => _end > _start;

    /// <summary>True while a pooled buffer is rented: only while bytes wait to be consumed or a read fills it.</summary>
    public bool HoldsBuffer => _buffer is not null;

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _end - _start);
        _start += count;
        if (_start == _end)
        {
            _start = _end = 0;
            ReturnBuffer();
        }
    }

    /// <summary>Reads more bytes from the stream into the buffer; false at end of stream.</summary>
    // Pooled state machines: a session's reads go asynchronous at every command, and a box each time was a tenth of
    // what the daemon allocated under load (issue 19). Each call's ValueTask is awaited once, as pooling requires.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<bool> FillAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_buffer is not null && _start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_buffer is not null && _end == _buffer.Length)
        {
            throw new InvalidOperationException("the line buffer is full; consume before filling");
        }

        if (_buffer is null && _waitWithoutBuffer)
        {
            // As the asynchronous read would: a session cut short (its time limit, the daemon's shutdown) reads no more,
            // even from a client that never lets the receive find nothing.
            cancellationToken.ThrowIfCancellationRequested();
            if (_tryBeforeWaiting && TryReceiveWithoutWaiting() is { } receivedNow)
            {
                return receivedNow;
            }
        }

        using var scope = _timeout.Start(timeout, cancellationToken);
        int read;
        try
        {
            if (_buffer is null)
            {
                if (_waitWithoutBuffer)
                {
                    // Completes when bytes (or the end of stream) arrive; the wait holds no memory of ours.
#pragma warning disable CA2022 // a zero-byte read reads nothing by design: it only waits
                    var wait = _stream.ReadAsync(Memory<byte>.Empty, scope.Token);
#pragma warning restore CA2022
                    // Done at once: the bytes were there before we asked, so the next fill tries a receive first again.
                    _tryBeforeWaiting = wait.IsCompleted;
                    await wait;
                    ObjectDisposedException.ThrowIf(_disposed, this);
                }

                _buffer = ArrayPool<byte>.Shared.Rent(_bufferSize);
            }

            read = await _stream.ReadAsync(_buffer.AsMemory(_end), scope.Token);
            _end += read;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no data from the peer for {timeout.TotalSeconds:0} s");
        }
        finally
        {
            if (_end == 0)
            {
                // Nothing buffered, and the read failed or met the end of stream: nothing to hold on to.
                ReturnBuffer();
            }
        }

        return read > 0;
    }

    /// <summary>
    /// Reads one line of at most <paramref name="maxLength"/> bytes including its terminator.
    /// A line ends at the first LF; a longer line is consumed up to that LF and reported as too long.
    /// Text is decoded as UTF-8 (SMTPUTF8 addresses); invalid bytes become U+FFFD and fail later syntax checks.
    /// </summary>
    /// <param name="lineTimeout">Once the line has begun, it must end within this.</param>
    /// <param name="lineTimedFrom">
    /// When <paramref name="lineTimeout"/> is counted from an earlier instant (<see cref="Environment.TickCount64"/>) than the
    /// line's first byte: a reply of several lines has one deadline, however its bytes trickle in.
    /// </param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Line> ReadLineAsync(
        int maxLength, TimeSpan timeout, CancellationToken cancellationToken, TimeSpan? lineTimeout = null, long? lineTimedFrom = null)
    {
        var tooLong = false;
        var scanned = 0;
        long? lineStarted = lineTimedFrom ?? (HasBufferedData ? Environment.TickCount64 : null);

        // The slice is this call's: since the last one the caller ran (a session's loop, with its own budget), or the
        // reader sat unused (a reused upstream's, since the previous message's reply).
        _budget.Restart();
        while (true)
        {
            var span = Buffered;
            var newline = span[scanned..].IndexOf((byte)'\n');
            if (newline >= 0)
            {
                newline += scanned;
                if (tooLong || newline + 1 > maxLength)
                {
                    Advance(newline + 1);
                    return new Line(LineStatus.TooLong, "");
                }

                var line = Classify(span[..(newline + 1)]);
                Advance(newline + 1);
                return line;
            }

            if (span.Length >= maxLength)
            {
                // Discard what we have: the line is too long whatever follows, and memory stays bounded.
                tooLong = true;
                Advance(span.Length);
                scanned = 0;
            }
            else
            {
                scanned = span.Length;
            }

            // Idle between lines may be long; once a line has begun it must finish within lineTimeout.
            var wait = timeout;
            if (lineTimeout is { } limit && (lineStarted is not null || tooLong))
            {
                lineStarted ??= Environment.TickCount64;
                var left = limit - TimeSpan.FromMilliseconds(Environment.TickCount64 - lineStarted.Value);
                if (left <= TimeSpan.Zero)
                {
                    throw new LineTimeoutException(limit);
                }

                wait = left < wait ? left : wait;
            }

            bool more;
            bool waited;
            try
            {
                var filling = FillAsync(wait, cancellationToken);
                waited = !filling.IsCompleted;
                more = await filling;
            }
            catch (TimeoutException) when (lineStarted is not null && lineTimeout is { } cut && wait < timeout)
            {
                throw new LineTimeoutException(cut);
            }

            if (!more)
            {
                return new Line(LineStatus.EndOfStream, "");
            }

            lineStarted ??= Environment.TickCount64;

            // A line that never ends (the peer keeps our buffer full and sends no LF) never makes this loop wait, and its
            // fills complete on a socket thread that serves other connections: give it up after a slice.
            await _budget.AfterStepAsync(waited);
        }
    }

    /// <summary>
    /// One receive into a fresh buffer on a non-blocking socket: true with bytes, false at end of stream, null when nothing
    /// has arrived yet (the buffer goes back: the wait holds none). Errors are thrown as a NetworkStream read throws them.
    /// </summary>
    private bool? TryReceiveWithoutWaiting()
    {
        if (_stream is not NetworkStream { Socket: { Blocking: false } socket })
        {
            return null;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(_bufferSize);
        int read;
        SocketError error;
        try
        {
            read = socket.Receive(buffer, SocketFlags.None, out error);
        }
        catch
        {
            // A disposed socket throws as a disposed stream would; the buffer goes back either way.
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        if (error != SocketError.Success || read == 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return error switch
            {
                SocketError.Success => false,
                SocketError.WouldBlock => null,
                _ => throw new IOException($"Unable to read data from the transport connection: {error}.", new SocketException((int)error)),
            };
        }

        _buffer = buffer;
        _start = 0;
        _end = read;
        return true;
    }

    private static Line Classify(ReadOnlySpan<byte> lineWithLf)
    {
        var bareLf = lineWithLf.Length < 2 || lineWithLf[^2] != (byte)'\r';
        var content = bareLf ? lineWithLf[..^1] : lineWithLf[..^2];
        var text = System.Text.Encoding.UTF8.GetString(content);
        if (bareLf)
        {
            return new Line(LineStatus.BareLineFeed, text);
        }

        return content.IndexOfAny((byte)'\r', (byte)0) >= 0
            ? new Line(LineStatus.ForbiddenByte, text)
            : new Line(LineStatus.Ok, text);
    }

    private void ReturnBuffer()
    {
        var buffer = _buffer;
        _buffer = null;
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        _timeout.Dispose();
        _start = _end = 0;
        ReturnBuffer();
    }
}
