using System.Globalization;
using Interceptor.Core.Replies;
using Interceptor.Smtp.IO;

namespace Interceptor.Smtp.Upstream;

/// <summary>Reads one (possibly multi-line) SMTP reply and splits off its enhanced status code.</summary>
public static class ReplyParser
{
    private const int MaxLineLength = 4096;
    private const int MaxLines = 200;

    public static async Task<SmtpReply> ReadAsync(LineReader reader, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var texts = new List<string>();
        int? code = null;
        while (true)
        {
            Line line;
            try
            {
                line = await reader.ReadLineAsync(MaxLineLength, timeout, cancellationToken);
            }
            catch (TimeoutException)
            {
                throw new UpstreamTimeoutException($"no reply within {timeout.TotalSeconds:0} s");
            }
            catch (IOException e)
            {
                throw new UpstreamConnectionLostException($"connection lost while waiting for a reply ({e.Message})", e);
            }

            if (line.Status == LineStatus.EndOfStream)
            {
                throw new UpstreamConnectionLostException("connection closed by the upstream");
            }

            var text = line.Text;
            if (line.Status == LineStatus.TooLong || text.Length < 3 ||
                !int.TryParse(text.AsSpan(0, 3), NumberStyles.None, CultureInfo.InvariantCulture, out var lineCode) ||
                lineCode is < 200 or > 599 || (text.Length > 3 && text[3] is not (' ' or '-')))
            {
                throw new UpstreamProtocolException($"not an SMTP reply line: \"{Protocol.SessionReplies.Printable(text)}\"");
            }

            if (code is not null && code != lineCode)
            {
                throw new UpstreamProtocolException($"reply code changed inside a multi-line reply ({code} then {lineCode})");
            }

            code = lineCode;
            texts.Add(text.Length > 4 ? text[4..] : "");
            var last = text.Length == 3 || text[3] == ' ';
            if (last)
            {
                return Build(lineCode, texts);
            }

            if (texts.Count >= MaxLines)
            {
                throw new UpstreamProtocolException($"reply longer than {MaxLines} lines");
            }
        }
    }

    /// <summary>Splits "5.1.1 rest" off each line when its class matches the basic code (RFC 3463).</summary>
    public static SmtpReply Build(int code, IReadOnlyList<string> texts)
    {
        string? enhanced = null;
        var stripped = new List<string>(texts.Count);
        foreach (var text in texts)
        {
            var candidate = EnhancedCodeOf(text, code);
            if (candidate is not null && (enhanced is null || enhanced == candidate))
            {
                enhanced = candidate;
                stripped.Add(text.Length > candidate.Length ? text[(candidate.Length + 1)..] : "");
            }
            else
            {
                stripped.Add(text);
            }
        }

        // Only strip when every line carried the same code; otherwise keep the text exactly as received.
        return enhanced is not null && texts.All(t => EnhancedCodeOf(t, code) == enhanced)
            ? new SmtpReply(code, enhanced, stripped)
            : new SmtpReply(code, null, texts);
    }

    private static string? EnhancedCodeOf(string text, int code)
    {
        var end = text.IndexOf(' ', StringComparison.Ordinal);
        var token = end < 0 ? text : text[..end];
        var parts = token.Split('.');
        if (parts.Length != 3 || parts[0] != (code / 100).ToString(CultureInfo.InvariantCulture))
        {
            return null;
        }

        return parts.Skip(1).All(p => p.Length is >= 1 and <= 3 && p.All(char.IsAsciiDigit)) ? token : null;
    }
}
