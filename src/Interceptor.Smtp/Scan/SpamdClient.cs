using System.Globalization;
using System.Text;
using Interceptor.Core.Net;

namespace Interceptor.Smtp.Scan;

/// <summary>
/// SpamAssassin's spamd, in its own protocol: <c>SYMBOLS SPAMC/1.5</c> with <c>Content-length</c> and <c>User</c> (the Unix
/// user, so per-user rules and Bayes apply), answered by <c>SPAMD/1.x 0 EX_OK</c>, <c>Spam: True ; 15.3 / 5.0</c> and the
/// names of the rules that fired. One connection per message, as spamc does.
/// </summary>
public sealed class SpamdClient(ScanEndpoint endpoint) : IContentScanner
{
    /// <summary>A reply is a status line, a few headers and a list of rule names: anything longer is not spamd.</summary>
    internal const int MaxReplyBytes = 64 * 1024;

    public string Name => $"spamd {endpoint}";

    public async Task<ScanResult> ScanAsync(ScanRequest request, CancellationToken token)
    {
        // closeSending: as spamc, the request is complete and spamd may answer (some versions read to the end).
        var reply = await ScannerSocket.ExchangeAsync(
            endpoint, Name, request.Spool,
            length => $"SYMBOLS SPAMC/1.5\r\nContent-length: {length.ToString(CultureInfo.InvariantCulture)}\r\n{UserLine(request.Message.Origin.User)}\r\n",
            closeSending: true, MaxReplyBytes, token);
        return Parse(Encoding.Latin1.GetString(reply));
    }

    /// <summary>spamd picks per-user settings by this name; a name it cannot carry on one line is left out.</summary>
    private static string UserLine(string user) =>
        user.Length > 0 && user.All(c => c is > ' ' and < '\u007f') ? $"User: {user}\r\n" : "";

    /// <summary>
    /// Reads a reply leniently (LF or CRLF, any header case, extra headers, a missing body), but only a reply that says
    /// EX_OK and carries a score counts: anything else is a failure, never a clean message.
    /// </summary>
    internal static ScanResult Parse(string reply)
    {
        var lines = reply.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var status = lines[0].Trim().Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        if (status.Length < 2 || !status[0].StartsWith("SPAMD/", StringComparison.OrdinalIgnoreCase))
        {
            throw new ScanFailedException(reply.Length == 0 ? "spamd closed the connection without a reply" : $"not a spamd reply: \"{Clip(lines[0])}\"");
        }

        if (status[1] != "0")
        {
            throw new ScanFailedException($"spamd refused the request: \"{Clip(lines[0])}\"");
        }

        double? score = null;
        var i = 1;
        for (; i < lines.Length && lines[i].Trim().Length > 0; i++)
        {
            var colon = lines[i].IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && lines[i][..colon].Trim().Equals("Spam", StringComparison.OrdinalIgnoreCase))
            {
                score = ParseScore(lines[i][(colon + 1)..]);
            }
        }

        if (score is null)
        {
            throw new ScanFailedException($"spamd reply without a score (Spam: header): \"{Clip(reply)}\"");
        }

        var body = string.Join(",", lines.Skip(i + 1));
        var symbols = body.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new ScanResult(score.Value, symbols);
    }

    /// <summary>"True ; 15.3 / 5.0" (also "Yes ; 15.3 / 5.0", spaces optional): the score.</summary>
    private static double? ParseScore(string value)
    {
        var semicolon = value.IndexOf(';', StringComparison.Ordinal);
        var slash = value.IndexOf('/', StringComparison.Ordinal);
        if (semicolon < 0 || slash < semicolon)
        {
            return null;
        }

        return double.TryParse(value[(semicolon + 1)..slash].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var score) && double.IsFinite(score)
            ? score
            : null;
    }

    private static string Clip(string text) => text.Length <= 120 ? text.Trim() : text[..120] + "…";
}
