using System.Buffers;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// Reads a spooled message line by line as the recipient will see it: the spool holds the wire form (the client's
/// dot-stuffing kept, see <see cref="Data.DataStreamFilter"/>), so a line's leading transparency dot is removed here.
/// Memory is one pooled buffer of the longest line (bounded by <c>Smtp.MaxDataLineBytes</c> upstream), whatever the
/// message's size.
/// </summary>
internal sealed class SpoolLineReader : IDisposable
{
    private const int ReadSize = 64 * 1024;
    private readonly Stream _stream;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(ReadSize * 2);
    private int _start;
    private int _end;
    private bool _eof;

    public SpoolLineReader(Stream stream) => _stream = stream;

    /// <summary>The next line including its CRLF (the last may lack one), dot-unstuffed; false at the end.</summary>
    public async ValueTask<bool> ReadLineAsync(CancellationToken token)
    {
        _start = _lineEnd;
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                SetLine(newline + 1);
                return true;
            }

            if (_eof)
            {
                if (_end > _start)
                {
                    SetLine(_end);
                    return true;
                }

                return false;
            }

            await FillAsync(token);
        }
    }

    private int _lineStart;
    private int _lineEnd;

    /// <summary>The current line (valid until the next read).</summary>
    public ReadOnlySpan<byte> Line => _buffer.AsSpan(_lineStart, _lineEnd - _lineStart);

    private void SetLine(int end)
    {
        _lineEnd = end;
        _lineStart = _start;
        if (_buffer[_lineStart] == (byte)'.' && end - _lineStart > 1)
        {
            _lineStart++;
        }
    }

    private async ValueTask FillAsync(CancellationToken token)
    {
        // Keep the partial line: move it to the front, or into a bigger buffer when one line would not leave room.
        var partial = _end - _start;
        if (partial + ReadSize > _buffer.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(partial + ReadSize);
            Buffer.BlockCopy(_buffer, _start, bigger, 0, partial);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }
        else if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, partial);
        }

        _start = 0;
        _lineEnd = 0;
        _end = partial;
        var read = await _stream.ReadAsync(_buffer.AsMemory(_end, ReadSize), token);
        _eof = read == 0;
        _end += read;
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}
