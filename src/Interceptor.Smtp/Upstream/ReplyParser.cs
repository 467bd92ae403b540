using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using Interceptor.Core.Replies;
using Interceptor.Smtp.IO;

namespace Interceptor.Smtp.Upstream;

/// <summary>Reads one (possibly multi-line) SMTP reply and splits off its enhanced status code.</summary>
public static class ReplyParser
{
    private const int MaxLineLength = 4096;
    private const int MaxLines = 200;

    /// <summary>
    /// Reads one reply, all of it within <paramref name="timeout"/>: an upstream that sends a byte now and then (any MX a
    /// customer names) cannot keep a reply coming for longer, and so cannot stretch a transaction past the bound the quota
    /// history counts on (<c>InterceptorOptions.LongestTransaction</c>). The ValueTask is pooled
    /// (<see cref="UpstreamConnection"/>), so await it once.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public static async ValueTask<SmtpReply> ReadAsync(LineReader reader, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Environment.TickCount64;
        var texts = new List<string>();
        int? code = null;
        while (true)
        {
            Line line;
            try
            {
                line = await reader.ReadLineAsync(MaxLineLength, timeout, cancellationToken, lineTimeout: timeout, lineTimedFrom: started);
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

            var text = line.Text.AsSpan().ContainsAny(Unprintable) ? WithControlsAsQuestionMarks(line.Text) : line.Text;
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

    // A control character in a reply line (any MX a customer names can send one, on a line ended by CRLF or a bare LF)
    // becomes '?', as Postfix's SMTP client makes replies printable: the text is relayed to the client, where a bare CR
    // could end a line early, and stored in the journal, where a NUL ends the text for SQL's length() and the sqlite3
    // shell and an escape sequence (C0 or C1) would reach an admin's terminal. A tab stays.
    private static readonly SearchValues<char> Unprintable = SearchValues.Create(
        string.Concat(Enumerable.Range(0, 32).Where(c => c != '\t').Concat(Enumerable.Range(0x7F, 33)).Select(c => (char)c)));

    private static string WithControlsAsQuestionMarks(string text) => string.Create(text.Length, text, static (chars, source) =>
    {
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = Unprintable.Contains(source[i]) ? '?' : source[i];
        }
    });

    /// <summary>
    /// Splits "5.1.1 rest" off each line when every line carries the same enhanced code whose class matches the basic code
    /// (RFC 3463); otherwise the lines stay exactly as received.
    /// </summary>
    public static SmtpReply Build(int code, IReadOnlyList<string> texts)
    {
        var enhanced = texts.Count == 0 ? null : EnhancedCodeOf(texts[0], code);
        if (enhanced is null)
        {
            return new SmtpReply(code, null, texts);
        }

        var stripped = new string[texts.Count];
        for (var i = 0; i < texts.Count; i++)
        {
            var text = texts[i];
            // The first line's code is valid, so another line carries the same one when it starts with it as a token.
            if (!text.StartsWith(enhanced, StringComparison.Ordinal) || (text.Length > enhanced.Length && text[enhanced.Length] != ' '))
            {
                return new SmtpReply(code, null, texts);
            }

            stripped[i] = text.Length > enhanced.Length ? text[(enhanced.Length + 1)..] : "";
        }

        return new SmtpReply(code, enhanced, stripped);
    }

    /// <summary>The line's first token when it is "class.subject.detail": the basic code's class, then 1–3 digits twice.</summary>
    private static string? EnhancedCodeOf(string text, int code)
    {
        var end = text.IndexOf(' ', StringComparison.Ordinal);
        var token = end < 0 ? text.AsSpan() : text.AsSpan(0, end);
        if (token.Length < 5 || token[0] != (char)('0' + code / 100) || token[1] != '.')
        {
            return null;
        }

        var rest = token[2..];
        var dot = rest.IndexOf('.');
        if (dot is < 1 or > 3 || rest.Length - dot - 1 is < 1 or > 3 ||
            rest[..dot].ContainsAnyExceptInRange('0', '9') || rest[(dot + 1)..].ContainsAnyExceptInRange('0', '9'))
        {
            return null;
        }

        return end < 0 ? text : text[..end];
    }
}
