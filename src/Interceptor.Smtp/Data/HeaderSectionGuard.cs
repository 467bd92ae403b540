namespace Interceptor.Smtp.Data;

/// <summary>
/// Second stage after <see cref="DataStreamFilter"/>: watches the message's header section (up to the first
/// empty line) so the client cannot forge or extend the trace header we put on top of it.
/// <list type="bullet">
/// <item>A client's own <c>X-Interceptor-Origin</c> header (any case, optional whitespace before the colon) is
/// renamed by inserting <c>Client-</c>: <c>X-Interceptor-Client-Origin:</c>. Its continuation lines stay with it,
/// so no receiver reads a second origin, and the abuse desk still sees what the client claimed.</item>
/// <item>A first line starting with a space or tab would fold into our header; it sets
/// <see cref="DataProblem.FoldsIntoTraceHeader"/> and nothing more is written (the caller refuses the message).</item>
/// </list>
/// The input is the filter's output (the wire form: CRLF lines, dot-stuffed), so a line's first "." is the
/// transparency dot a receiver removes: it is skipped when matching, as the receiver will skip it. State is
/// a few fields and a 22-byte hold for a possible header name cut by a chunk boundary, whatever the input;
/// after the header section every byte is copied as is.
/// </summary>
public sealed class HeaderSectionGuard
{
    /// <summary>The name as compared (lower case); a client header with this name is renamed.</summary>
    private static ReadOnlySpan<byte> Forged => "x-interceptor-origin"u8;

    /// <summary>Inserted after "X-Interceptor-" of a client's header (so its case is kept).</summary>
    private static ReadOnlySpan<byte> Insert => "Client-"u8;

    private const int PrefixBeforeInsert = 14; // "X-Interceptor-"

    // Longest hold: the transparency dot and the whole name; the next byte decides.
    private readonly byte[] _held = new byte[1 + 20];
    private int _heldCount;
    private bool _heldDot;
    private bool _inLine;
    private bool _firstLine = true;

    /// <summary>True once the empty line that ends the header section went through: the rest is copied as is.</summary>
    public bool HeaderSectionEnded { get; private set; }

    /// <summary><see cref="DataProblem.FoldsIntoTraceHeader"/> once found; then nothing more is written.</summary>
    public DataProblem Problem { get; private set; }

    /// <summary>Client headers renamed so far.</summary>
    public int Renamed { get; private set; }

    /// <summary>
    /// The output must hold this many bytes for an input of <paramref name="inputLength"/>: a rename adds 7 bytes
    /// to a line of at least 21, and up to 21 held bytes come out with a later chunk.
    /// </summary>
    public static int OutputSizeFor(int inputLength) => inputLength + (inputLength / 3) + 32;

    /// <summary>Copies <paramref name="input"/> (all of it) to <paramref name="output"/>, renaming as needed; returns the bytes written.</summary>
    public int Process(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var written = 0;
        var i = 0;
        while (i < input.Length && Problem == DataProblem.None)
        {
            if (HeaderSectionEnded)
            {
                Copy(input[i..], output, ref written);
                break;
            }

            if (_inLine)
            {
                var end = input[i..].IndexOf((byte)'\n');
                var take = end < 0 ? input.Length - i : end + 1;
                Copy(input.Slice(i, take), output, ref written);
                i += take;
                _inLine = end < 0;
                continue;
            }

            var b = input[i];
            var matched = _heldCount - (_heldDot ? 1 : 0);
            if (matched == 0)
            {
                if (b == (byte)'.' && !_heldDot)
                {
                    // The transparency dot: the receiver removes it, so what follows decides.
                    _heldDot = true;
                    _held[_heldCount++] = b;
                    i++;
                    continue;
                }

                if (b == (byte)'\r' && !_heldDot)
                {
                    // An empty line: the header section ends here (the filter only emits CR before LF).
                    HeaderSectionEnded = true;
                    continue;
                }

                if (_firstLine && b is (byte)' ' or (byte)'\t')
                {
                    Problem = DataProblem.FoldsIntoTraceHeader;
                    break;
                }

                _firstLine = false;
            }

            if (matched < Forged.Length && (b | 0x20) == Forged[matched] && IsNameByte(b))
            {
                _held[_heldCount++] = b;
                i++;
                continue;
            }

            if (matched == Forged.Length && b is (byte)':' or (byte)' ' or (byte)'\t')
            {
                // The client's own origin header (a space or tab before the colon is obsolete syntax some
                // receivers still accept; a line that is no header at all loses nothing by the rename).
                var nameStart = _heldDot ? 1 : 0;
                Copy(_held.AsSpan(0, nameStart + PrefixBeforeInsert), output, ref written);
                Copy(Insert, output, ref written);
                Copy(_held.AsSpan(nameStart + PrefixBeforeInsert, _heldCount - nameStart - PrefixBeforeInsert), output, ref written);
                Renamed++;
            }
            else
            {
                Copy(_held.AsSpan(0, _heldCount), output, ref written);
            }

            // Not (or no longer) a candidate: the rest of the line, from this byte on, passes as is.
            _heldCount = 0;
            _heldDot = false;
            _inLine = true;
        }

        return written;
    }

    /// <summary>Only the letters, digits and '-' of the name match; (b | 0x20) alone would let '@' pass for '`'.</summary>
    private static bool IsNameByte(byte b) => b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (byte)'-';

    private static void Copy(ReadOnlySpan<byte> from, Span<byte> output, ref int written)
    {
        from.CopyTo(output[written..]);
        written += from.Length;
    }
}
