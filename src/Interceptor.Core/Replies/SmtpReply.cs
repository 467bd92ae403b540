using System.Globalization;

namespace Interceptor.Core.Replies;

/// <summary>
/// One SMTP reply: the basic code, the optional enhanced status code (RFC 3463) and one or more text lines.
/// Expected SMTP outcomes travel as values of this type, never as exceptions.
/// </summary>
public sealed record SmtpReply
{
    public SmtpReply(int code, string? enhancedCode, IReadOnlyList<string> lines)
    {
        if (code is < 200 or > 599)
        {
            throw new ArgumentOutOfRangeException(nameof(code), code, "an SMTP reply code is 2xx to 5xx");
        }

        Code = code;
        EnhancedCode = enhancedCode;
        Lines = lines.Count == 0 ? [""] : lines;
    }

    public SmtpReply(int code, string? enhancedCode, string text)
        : this(code, enhancedCode, [text])
    {
    }

    public int Code { get; }
    public string? EnhancedCode { get; }
    public IReadOnlyList<string> Lines { get; }

    public bool IsPositive => Code is >= 200 and < 400;
    public bool IsTransientFailure => Code is >= 400 and < 500;
    public bool IsPermanentFailure => Code >= 500;

    /// <summary>The text as one line, for logs.</summary>
    public string Text => string.Join(" ", Lines);

    /// <summary>The reply as sent on the wire: every line prefixed by the code (and enhanced code), CRLF-terminated.</summary>
    public string ToWire()
    {
        var length = 0;
        for (var i = 0; i < Lines.Count; i++)
        {
            length += WireLineLength(i);
        }

        // Sized exactly and written once: a reply goes out several times a message, and a builder cost three
        // allocations each time (tests/bench/run's allocation profile, issue 19).
        return string.Create(length, this, static (span, reply) =>
        {
            for (var i = 0; i < reply.Lines.Count; i++)
            {
                var written = reply.WriteWireLine(i, span);
                span = span[written..];
            }
        });
    }

    private bool IsBareCode(int line) => Lines[line].Length == 0 && EnhancedCode is null && line == Lines.Count - 1;

    private int WireLineLength(int line) =>
        3 + (IsBareCode(line) ? 0 : 1)
          + (EnhancedCode is null ? 0 : EnhancedCode.Length + (Lines[line].Length > 0 ? 1 : 0))
          + Lines[line].Length + 2;

    /// <summary>"250-text", "250 2.0.0 text" or "250" alone (no trailing space), with its CRLF.</summary>
    private int WriteWireLine(int line, Span<char> span)
    {
        Code.TryFormat(span, out var at, provider: CultureInfo.InvariantCulture);
        if (!IsBareCode(line))
        {
            span[at++] = line == Lines.Count - 1 ? ' ' : '-';
        }

        if (EnhancedCode is not null)
        {
            EnhancedCode.CopyTo(span[at..]);
            at += EnhancedCode.Length;
            if (Lines[line].Length > 0)
            {
                span[at++] = ' ';
            }
        }

        Lines[line].CopyTo(span[at..]);
        at += Lines[line].Length;
        span[at++] = '\r';
        span[at++] = '\n';
        return at;
    }

    /// <summary>Most of a reply's text logs, events and the journal keep (<see cref="ToString"/>).</summary>
    public const int MaxRecordedChars = 1024;

    /// <summary>
    /// "250 2.0.0 Ok", every line's text joined, for logs, events and the journal; cut after
    /// <see cref="MaxRecordedChars"/> characters, saying how many more there were. An upstream a customer names may answer
    /// 200 lines of 4,096 bytes, and every copy of that in a log line or a row would be hers to multiply by her connections.
    /// </summary>
    public override string ToString()
    {
        var text = Lines.Count == 1 && Lines[0].Length <= MaxRecordedChars ? Lines[0] : RecordedText();
        return EnhancedCode is null ? $"{Code} {text}" : $"{Code} {EnhancedCode} {text}";
    }

    // The lines joined by spaces up to MaxRecordedChars (never half a surrogate pair), without joining what is cut.
    private string RecordedText()
    {
        var length = Lines.Count - 1;
        foreach (var line in Lines)
        {
            length += line.Length;
        }

        if (length <= MaxRecordedChars)
        {
            return Text;
        }

        var kept = new System.Text.StringBuilder(MaxRecordedChars + 40);
        for (var i = 0; i < Lines.Count && kept.Length < MaxRecordedChars; i++)
        {
            if (i > 0)
            {
                kept.Append(' ');
            }

            kept.Append(Lines[i].AsSpan(0, Math.Min(Lines[i].Length, MaxRecordedChars - kept.Length)));
        }

        if (kept.Length > 0 && char.IsHighSurrogate(kept[^1]))
        {
            kept.Length--;
        }

        var more = length - kept.Length;
        return kept.Append(CultureInfo.InvariantCulture, $"… ({more} more characters)").ToString();
    }
}
