using System.Buffers;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// Test-side byte reader: splits what a peer sends at LF and keeps every byte as received,
/// so tests see exactly what went over the wire. Lines are bounded to keep a runaway peer harmless.
/// </summary>
internal sealed class WireReader(Stream stream)
{
    private const int MaxLine = 1024 * 1024;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly ArrayBufferWriter<byte> _line = new();
    private int _start;
    private int _end;

    /// <summary>The next line including its LF; at end of stream the unterminated rest, then null.</summary>
    public async Task<byte[]?> ReadLineAsync(CancellationToken cancellationToken)
    {
        _line.Clear();
        while (true)
        {
            if (_start == _end)
            {
                _start = 0;
                _end = await stream.ReadAsync(_buffer, cancellationToken);
                if (_end == 0)
                {
                    return _line.WrittenCount > 0 ? _line.WrittenSpan.ToArray() : null;
                }
            }

            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            var stop = newline < 0 ? _end : newline + 1;
            _line.Write(_buffer.AsSpan(_start, stop - _start));
            _start = stop;
            if (newline >= 0)
            {
                return _line.WrittenSpan.ToArray();
            }

            if (_line.WrittenCount > MaxLine)
            {
                throw new InvalidDataException($"line longer than {MaxLine} bytes");
            }
        }
    }

    /// <summary>True when nothing but the end of the stream (or a reset) follows.</summary>
    public async Task<bool> AtEndAsync(CancellationToken cancellationToken)
    {
        if (_start < _end)
        {
            return false;
        }

        try
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, cancellationToken);
            return _end == 0;
        }
        catch (IOException)
        {
            _end = 0;
            return true;
        }
    }

    public static string Text(byte[] line)
    {
        var length = line.Length;
        if (length > 0 && line[length - 1] == '\n')
        {
            length--;
            if (length > 0 && line[length - 1] == '\r')
            {
                length--;
            }
        }

        return System.Text.Encoding.UTF8.GetString(line, 0, length);
    }
}
