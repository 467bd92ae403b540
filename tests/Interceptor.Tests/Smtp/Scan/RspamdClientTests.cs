using System.Text;
using Interceptor.Smtp.Scan;

namespace Interceptor.Tests.Smtp.Scan;

/// <summary>
/// Issue 16: rspamd's /checkv2, at the protocol level (no rspamd in CI): the request our client sends, and a reply in the
/// shape rspamd 3.x gives (score, required_score, action, thresholds, symbols with their own scores).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class RspamdClientTests
{
    /// <summary>An rspamd 3.x /checkv2 reply for a GTUBE-like message, as rspamd writes it (one line).</summary>
    internal static readonly string RecordedReply = """
        {"is_skipped":false,"score":17.2,"required_score":15.0,"action":"reject","thresholds":{"reject":15.0,"add header":6.0,"greylist":4.0},
        "symbols":{"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1,"metric_score":-0.1,"description":"Known content-type","options":["text/plain"]},
        "GTUBE":{"name":"GTUBE","score":15.0,"metric_score":0.0,"description":"Generic test for unsolicited bulk email"},
        "MISSING_DATE":{"name":"MISSING_DATE","score":1.0,"metric_score":1.0,"description":"Date header is missing"},
        "R_SPF_NA":{"name":"R_SPF_NA","score":0.0,"metric_score":0.0,"description":"Missing SPF record"},
        "MISSING_MID":{"name":"MISSING_MID","score":2.5,"metric_score":2.5,"description":"Message-ID header is missing"}},
        "messages":{},"message-id":"undef","time_real":0.012,"milter":{"remove_headers":{"X-Spam":0}}}
        """.ReplaceLineEndings("");

    [Test]
    public async Task The_request_carries_the_envelope_in_headers_and_the_unstuffed_message_and_the_recorded_reply_gives_the_verdict()
    {
        var body = Encoding.UTF8.GetBytes(RecordedReply);
        var reply = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.4\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n").Concat(body).ToArray();
        await using var scanner = new FakeScanner(reply);
        await using var spool = await FakeScanner.SpoolAsync("Subject: x\r\n\r\n..dot\r\n");

        var result = await new RspamdClient(scanner.Endpoint).ScanAsync(
            new ScanRequest(FakeScanner.Message("bob@example.net", "carol@example.org"), spool, "relay.test"), CancellationToken.None);

        var request = Encoding.ASCII.GetString(await scanner.Request);
        Assert.That(request, Does.StartWith("POST /checkv2 HTTP/1.1\r\n"));
        foreach (var header in new[] { "Content-Length: 20", "Queue-Id: tx1", "IP: 127.0.0.1", "Helo: relay.test", "From: alice@customer.test", "User: alice", "Rcpt: bob@example.net", "Rcpt: carol@example.org" })
        {
            Assert.That(request, Does.Contain("\r\n" + header + "\r\n"), header);
        }

        Assert.That(request, Does.EndWith("\r\n\r\nSubject: x\r\n\r\n.dot\r\n"));
        Assert.That(result.Score, Is.EqualTo(17.2));
        Assert.That(result.Action, Is.EqualTo("reject"));
        Assert.That(result.Symbols, Is.EqualTo(new[] { "GTUBE", "MISSING_MID", "MISSING_DATE", "R_SPF_NA", "MIME_GOOD" }), "highest score first");
    }

    [Test]
    public void A_chunked_reply_is_read()
    {
        var json = """{"score":3.5,"action":"no action","symbols":{}}""";
        var reply = $"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{json.Length - 10:x}\r\n{json[..^10]}\r\n{10:x}\r\n{json[^10..]}\r\n0\r\n\r\n";

        var result = RspamdClient.Parse(Encoding.ASCII.GetBytes(reply));

        Assert.That(result.Score, Is.EqualTo(3.5));
        Assert.That(result.Symbols, Is.Empty);
    }

    [TestCase("", "without a reply")]
    [TestCase("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 27\r\n\r\n{\"error\":\"cannot parse\"}", "rspamd answered HTTP/1.1 500")]
    [TestCase("HTTP/1.1 200 OK\r\n\r\n{\"error\":\"Message is empty\"}", "without a score: Message is empty")]
    [TestCase("HTTP/1.1 200 OK\r\n\r\n<html>", "not JSON")]
    [TestCase("SPAMD/1.1 0 EX_OK\r\n\r\n", "not an HTTP reply")]
    public void Anything_but_a_scored_reply_is_a_failure(string reply, string problem)
    {
        var error = Assert.Throws<ScanFailedException>(() => RspamdClient.Parse(Encoding.ASCII.GetBytes(reply)));

        Assert.That(error!.Message, Does.Contain(problem));
    }
}
