using System.Text;

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
        var builder = new StringBuilder();
        for (var i = 0; i < Lines.Count; i++)
        {
            builder.Append(Code);
            builder.Append(i == Lines.Count - 1 ? ' ' : '-');
            if (EnhancedCode is not null)
            {
                builder.Append(EnhancedCode);
                if (Lines[i].Length > 0)
                {
                    builder.Append(' ');
                }
            }

            builder.Append(Lines[i]);
            if (Lines[i].Length == 0 && EnhancedCode is null && i == Lines.Count - 1)
            {
                builder.Length--; // "250" alone, not "250 " with a trailing space
            }

            builder.Append("\r\n");
        }

        return builder.ToString();
    }

    /// <summary>"250 2.0.0 Ok" (first line only), for logs and events.</summary>
    public override string ToString() =>
        EnhancedCode is null ? $"{Code} {Text}" : $"{Code} {EnhancedCode} {Text}";
}
