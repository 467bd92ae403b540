using System.Globalization;
using System.Text;
using System.Text.Json;
using Interceptor.Core.Net;

namespace Interceptor.Smtp.Scan;

/// <summary>
/// rspamd's normal worker over HTTP/1.1: <c>POST /checkv2</c> with the envelope in headers (<c>IP</c>, <c>Helo</c>,
/// <c>From</c>, one <c>Rcpt</c> per recipient, <c>User</c>, <c>Queue-Id</c>) and the message as the body; the JSON reply's
/// <c>score</c>, <c>action</c> and <c>symbols</c> (ordered by their score, highest first). One connection per message.
/// </summary>
public sealed class RspamdClient(ScanEndpoint endpoint) : IContentScanner
{
    /// <summary>rspamd's reply lists every symbol with its options: generous, but bounded.</summary>
    internal const int MaxReplyBytes = 1 << 20;

    public string Name => $"rspamd {endpoint}";

    public async Task<ScanResult> ScanAsync(ScanRequest request, CancellationToken token) =>
        Parse(await ScannerSocket.ExchangeAsync(endpoint, Name, request.Spool, length => RequestHead(request, length), closeSending: false, MaxReplyBytes, token));

    internal string RequestHead(ScanRequest request, long length)
    {
        var message = request.Message;
        var head = new StringBuilder()
            .Append("POST /checkv2 HTTP/1.1\r\n")
            .Append("Host: ").Append(endpoint.IsUnix ? "localhost" : endpoint.ToString()).Append("\r\n")
            .Append("Connection: close\r\n")
            .Append("Content-Length: ").Append(length.ToString(CultureInfo.InvariantCulture)).Append("\r\n")
            .Append("Queue-Id: ").Append(message.TransactionId).Append("\r\n")
            .Append("IP: ").Append(message.Origin.Client.Address.ToString()).Append("\r\n")
            .Append("Helo: ").Append(request.HeloName).Append("\r\n")
            .Append("From: ").Append(HeaderValue(message.Sender)).Append("\r\n")
            .Append("User: ").Append(HeaderValue(message.Origin.User)).Append("\r\n");
        foreach (var recipient in message.Recipients)
        {
            head.Append("Rcpt: ").Append(HeaderValue(recipient)).Append("\r\n");
        }

        return head.Append("\r\n").ToString();
    }

    /// <summary>Addresses passed the SMTP parser already; a control byte still never reaches a header line.</summary>
    private static string HeaderValue(string text) => new([.. text.Where(c => c >= ' ' && c != '\u007f')]);

    /// <summary>An HTTP/1.1 reply (Content-Length or chunked or to the close) whose body is rspamd's JSON verdict.</summary>
    internal static ScanResult Parse(byte[] reply)
    {
        var split = reply.AsSpan().IndexOf("\r\n\r\n"u8);
        if (split < 0)
        {
            throw new ScanFailedException(reply.Length == 0 ? "rspamd closed the connection without a reply" : "not an HTTP reply from rspamd");
        }

        var head = Encoding.ASCII.GetString(reply, 0, split).Split("\r\n");
        var status = head[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            throw new ScanFailedException($"not an HTTP reply from rspamd: \"{head[0]}\"");
        }

        var body = reply.AsMemory(split + 4);
        if (head.Any(h => h.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) && h.Contains("chunked", StringComparison.OrdinalIgnoreCase)))
        {
            body = Unchunk(body.Span);
        }

        if (status[1] != "200")
        {
            throw new ScanFailedException($"rspamd answered {head[0]}: {Clip(Encoding.UTF8.GetString(body.Span))}");
        }

        return ParseVerdict(body);
    }

    internal static ScanResult ParseVerdict(ReadOnlyMemory<byte> json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("score", out var score) || score.ValueKind != JsonValueKind.Number)
            {
                var error = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var e) ? e.ToString() : "no score";
                throw new ScanFailedException($"rspamd reply without a score: {Clip(error)}");
            }

            var action = root.TryGetProperty("action", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
            var symbols = new List<(string Name, double Score)>();
            if (root.TryGetProperty("symbols", out var all) && all.ValueKind == JsonValueKind.Object)
            {
                foreach (var symbol in all.EnumerateObject())
                {
                    var weight = symbol.Value.ValueKind == JsonValueKind.Object && symbol.Value.TryGetProperty("score", out var s) && s.ValueKind == JsonValueKind.Number
                        ? s.GetDouble()
                        : 0;
                    symbols.Add((symbol.Name, weight));
                }
            }

            return new ScanResult(score.GetDouble(), [.. symbols.OrderByDescending(s => s.Score).ThenBy(s => s.Name, StringComparer.Ordinal).Select(s => s.Name)], action);
        }
        catch (JsonException e)
        {
            throw new ScanFailedException($"rspamd reply is not JSON: {e.Message}", e);
        }
    }

    private static byte[] Unchunk(ReadOnlySpan<byte> chunked)
    {
        var body = new List<byte>();
        while (true)
        {
            var end = chunked.IndexOf("\r\n"u8);
            var sizeText = end < 0 ? "" : Encoding.ASCII.GetString(chunked[..end]).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var size) || size < 0 || end + 2 + size > chunked.Length)
            {
                throw new ScanFailedException("rspamd reply: broken chunked encoding");
            }

            if (size == 0)
            {
                return [.. body];
            }

            body.AddRange(chunked.Slice(end + 2, size));
            chunked = chunked[(end + 2 + size)..];
            if (chunked.StartsWith("\r\n"u8))
            {
                chunked = chunked[2..];
            }
        }
    }

    private static string Clip(string text) => text.Length <= 120 ? text.Trim() : text[..120] + "…";
}
