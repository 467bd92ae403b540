using System.Buffers;

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
/// A fixed-size read buffer over a stream. Reads lines with a hard length limit and gives raw access to
/// buffered bytes for DATA. Memory is the buffer and nothing else, whatever the peer sends.
/// </summary>
public sealed class LineReader : IDisposable
{
    private readonly Stream _stream;
    private readonly OperationTimeout _timeout = new();
    private byte[] _buffer;
    private int _start;
    private int _end;

    public LineReader(Stream stream, int bufferSize = 16 * 1024)
    {
        _stream = stream;
        _buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
    }

    /// <summary>Bytes already received and not yet consumed.</summary>
    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    public bool HasBufferedData => _end > _start;

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _end - _start);
        _start += count;
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    /// <summary>Reads more bytes from the stream into the buffer; false at end of stream.</summary>
    public async ValueTask<bool> FillAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            throw new InvalidOperationException("the line buffer is full; consume before filling");
        }

        using var scope = _timeout.Start(timeout, cancellationToken);
        int read;
        try
        {
            read = await _stream.ReadAsync(_buffer.AsMemory(_end), scope.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no data from the peer for {timeout.TotalSeconds:0} s");
        }

        _end += read;
        return read > 0;
    }

    /// <summary>
    /// Reads one line of at most <paramref name="maxLength"/> bytes including its terminator.
    /// A line ends at the first LF; a longer line is consumed up to that LF and reported as too long.
    /// Text is decoded as UTF-8 (SMTPUTF8 addresses); invalid bytes become U+FFFD and fail later syntax checks.
    /// </summary>
    public async ValueTask<Line> ReadLineAsync(int maxLength, TimeSpan timeout, CancellationToken cancellationToken, TimeSpan? lineTimeout = null)
    {
        var tooLong = false;
        var scanned = 0;
        long? lineStarted = HasBufferedData ? Environment.TickCount64 : null;
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
            try
            {
                more = await FillAsync(wait, cancellationToken);
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
        }
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

    public void Dispose()
    {
        _timeout.Dispose();
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
