namespace Interceptor.Smtp.Data;

/// <summary>What made a message unacceptable; the first problem found wins.</summary>
public enum DataProblem
{
    None,
    BareCarriageReturn,
    NulByte,
    LineTooLong,
    TooBig,

    /// <summary>The first line starts with a space or tab: it would fold into the trace header (see <see cref="HeaderSectionGuard"/>).</summary>
    FoldsIntoTraceHeader,
}

/// <summary>
/// Streams the DATA section from the client to the upstream, byte for byte, while closing every
/// SMTP-smuggling door (SEC Consult, 2023):
/// <list type="bullet">
/// <item>Only CRLF "." CRLF ends the data, where the first CRLF is a real one (or the start of DATA).</item>
/// <item>A bare LF is a line ending and is normalised to CRLF, so legacy scripts that write "\n" keep working.</item>
/// <item>A line that is only "." but does not end the data (it touches a bare LF) is re-stuffed to "..",
/// so no upstream can mistake it for the end.</item>
/// <item>A bare CR or a NUL byte makes the message unacceptable: the caller refuses it and relays nothing.</item>
/// </list>
/// The client's own dot-stuffing is kept as sent (the wire form is the same on both hops), so a clean
/// message reaches the upstream unchanged. Memory use is the caller's two buffers, whatever the input.
/// </summary>
public sealed class DataStreamFilter
{
    private readonly long _maxBytes;
    private readonly int _maxLineBytes;
    private bool _atLineStart = true;
    private bool _lineFollowsRealCrlf = true;
    private bool _heldDot;
    private bool _heldCr;
    private int _lineLength;

    public DataStreamFilter(long maxBytes, int maxLineBytes)
    {
        _maxBytes = maxBytes;
        _maxLineBytes = maxLineBytes;
    }

    /// <summary>The first problem found; once set, nothing more is written to the output.</summary>
    public DataProblem Problem { get; private set; }

    private long _consumed;
    private long _stuffingDots;

    /// <summary>
    /// The message size so far as RFC 1870 counts it: the bytes received, less the end marker and the
    /// transparency dots (the first dot of every line that starts with one).
    /// </summary>
    public long Size => _consumed - _stuffingDots - (Completed ? 3 : HeldMarkerBytes);

    /// <summary>A held "." (and the CR after it) may turn out to be the end marker: not message bytes yet.</summary>
    private int HeldMarkerBytes => _heldDot ? (_heldCr ? 2 : 1) : 0;

    /// <summary>True once the end-of-data line has been consumed.</summary>
    public bool Completed { get; private set; }

    /// <summary>Bare LFs rewritten to CRLF so far.</summary>
    public int NormalisedLineFeeds { get; private set; }

    /// <summary>The output must hold at least this many bytes for an input of <paramref name="inputLength"/>.</summary>
    public static int OutputSizeFor(int inputLength) => (2 * inputLength) + 4;

    /// <summary>
    /// Consumes input up to the end of data (or all of it) and writes what goes upstream.
    /// </summary>
    public (int Consumed, int Written) Process(ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (output.Length < OutputSizeFor(input.Length))
        {
            input = input[..Math.Max(0, (output.Length - 4) / 2)];
        }

        var writer = new SpanWriter(output, this);
        var i = 0;
        while (i < input.Length && !Completed)
        {
            var b = input[i];
            if (_heldCr)
            {
                _heldCr = false;
                if (b == (byte)'\n')
                {
                    i++;
                    if (EndLine(ref writer, realCrlf: true))
                    {
                        break;
                    }

                    continue;
                }

                Flag(DataProblem.BareCarriageReturn);
                ReleaseHeldDot(ref writer);
                writer.Write((byte)'\r');
            }

            if (_heldDot)
            {
                if (b is (byte)'\r' or (byte)'\n')
                {
                    // handled by the line-ending branches below, with the dot still held
                }
                else
                {
                    ReleaseHeldDot(ref writer);
                }
            }
            else if (_atLineStart && b == (byte)'.')
            {
                _heldDot = true;
                _atLineStart = false;
                _lineLength = 1;
                i++;
                continue;
            }

            switch (b)
            {
                case (byte)'\r':
                    _heldCr = true;
                    _atLineStart = false;
                    i++;
                    continue;
                case (byte)'\n':
                    NormalisedLineFeeds++;
                    i++;
                    EndLine(ref writer, realCrlf: false);
                    continue;
                case 0:
                    Flag(DataProblem.NulByte);
                    i++;
                    continue;
            }

            // A run of ordinary bytes: copy it in one go.
            var run = input[i..].IndexOfAny((byte)'\r', (byte)'\n', (byte)0);
            if (run < 0)
            {
                run = input.Length - i;
            }

            _atLineStart = false;
            _lineLength += run;
            if (_lineLength + 2 > _maxLineBytes)
            {
                Flag(DataProblem.LineTooLong);
            }

            writer.Write(input.Slice(i, run));
            i += run;
        }

        _consumed += i;
        if (Size > _maxBytes)
        {
            Flag(DataProblem.TooBig);
        }

        return (i, writer.Written);
    }

    /// <summary>Ends the current line; true when it was the end-of-data line.</summary>
    private bool EndLine(ref SpanWriter writer, bool realCrlf)
    {
        if (_heldDot)
        {
            _heldDot = false;
            if (realCrlf && _lineFollowsRealCrlf)
            {
                Completed = true;
                return true;
            }

            // A lone dot touching a bare LF: not the end here, and it must not be the end upstream either.
            writer.Write((byte)'.');
            writer.Write((byte)'.');
        }

        writer.Write((byte)'\r');
        writer.Write((byte)'\n');
        _atLineStart = true;
        _lineFollowsRealCrlf = realCrlf;
        _lineLength = 0;
        return false;
    }

    private void ReleaseHeldDot(ref SpanWriter writer)
    {
        if (_heldDot)
        {
            _heldDot = false;
            _stuffingDots++;
            writer.Write((byte)'.');
        }
    }

    private void Flag(DataProblem problem)
    {
        if (Problem == DataProblem.None)
        {
            Problem = problem;
        }
    }

    /// <summary>Writes into the output until a problem is flagged; after that the message is refused anyway.</summary>
    private ref struct SpanWriter(Span<byte> output, DataStreamFilter owner)
    {
        private readonly Span<byte> _output = output;
        private readonly DataStreamFilter _owner = owner;

        public int Written { get; private set; }

        public void Write(byte value)
        {
            if (_owner.Problem == DataProblem.None)
            {
                _output[Written++] = value;
            }
        }

        public void Write(ReadOnlySpan<byte> values)
        {
            if (_owner.Problem == DataProblem.None)
            {
                values.CopyTo(_output[Written..]);
                Written += values.Length;
            }
        }
    }
}
