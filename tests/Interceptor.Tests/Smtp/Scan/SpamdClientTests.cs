using System.Diagnostics;
using System.Text;
using Interceptor.Smtp.Scan;

namespace Interceptor.Tests.Smtp.Scan;

/// <summary>Issue 16: spamd's SYMBOLS SPAMC/1.5, spoken by our own client.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class SpamdClientTests
{
    [Test]
    public async Task The_request_names_the_unix_user_and_carries_the_unstuffed_message_with_its_exact_length()
    {
        // The wire form's transparency dot ("..hidden") is not part of the message spamd must read.
        var reply = "SPAMD/1.1 0 EX_OK\r\nContent-length: 19\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,MISSING_DATE\r\n";
        await using var scanner = new FakeScanner(Encoding.ASCII.GetBytes(reply));
        await using var spool = await FakeScanner.SpoolAsync("Subject: x\r\n\r\n..hidden\r\nbody\r\n");

        var result = await new SpamdClient(scanner.Endpoint).ScanAsync(new ScanRequest(FakeScanner.Message("bob@example.net"), spool, "relay.test"), CancellationToken.None);

        var request = Encoding.ASCII.GetString(await scanner.Request);
        Assert.That(request, Is.EqualTo("SYMBOLS SPAMC/1.5\r\nContent-length: 29\r\nUser: alice\r\n\r\nSubject: x\r\n\r\n.hidden\r\nbody\r\n"));
        Assert.That(result.Score, Is.EqualTo(1000.0));
        Assert.That(result.Symbols, Is.EqualTo(new[] { "GTUBE", "MISSING_DATE" }));
    }

    [TestCase("SPAMD/1.1 0 EX_OK\r\nSpam: False ; 1.2 / 5.0\r\n\r\n", 1.2, "")]
    [TestCase("SPAMD/1.1 0 EX_OK\nspam: yes;17.25/5.0\ncontent-length: 5\n\nA,B,C", 17.25, "A,B,C")]
    [TestCase("SPAMD/1.5 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; -0.5 / 5.0\r\n", -0.5, "")]
    public void Replies_are_read_leniently(string reply, double score, string symbols)
    {
        var result = SpamdClient.Parse(reply);

        Assert.That(result.Score, Is.EqualTo(score));
        Assert.That(string.Join(",", result.Symbols), Is.EqualTo(symbols));
    }

    [TestCase("", "without a reply")]
    [TestCase("HTTP/1.1 200 OK\r\n\r\n", "not a spamd reply")]
    [TestCase("SPAMD/1.0 76 Bad header line: (Content-Length mismatch: Expected 5 bytes, got 3 bytes)\r\n", "spamd refused the request")]
    [TestCase("SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "without a score")]
    [TestCase("SPAMD/1.1 0 EX_OK\r\nSpam: True ; lots / 5.0\r\n\r\n", "without a score")]
    public void Anything_but_a_scored_EX_OK_is_a_failure_never_a_clean_message(string reply, string problem)
    {
        var error = Assert.Throws<ScanFailedException>(() => SpamdClient.Parse(reply));

        Assert.That(error!.Message, Does.Contain(problem));
    }

    [Test]
    public async Task A_spamd_that_accepts_and_never_answers_is_cut_off_by_the_token()
    {
        await using var scanner = new FakeScanner(reply: null);
        await using var spool = await FakeScanner.SpoolAsync("Subject: x\r\n\r\nbody\r\n");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var watch = Stopwatch.StartNew();

        Assert.CatchAsync<OperationCanceledException>(async () =>
            await new SpamdClient(scanner.Endpoint).ScanAsync(new ScanRequest(FakeScanner.Message(), spool, "relay.test"), timeout.Token));

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
    }

    [Test]
    public async Task Nothing_listening_is_a_scan_failure_naming_the_endpoint()
    {
        await using var spool = await FakeScanner.SpoolAsync("Subject: x\r\n\r\nbody\r\n");
        var client = new SpamdClient(new Interceptor.Core.Net.ScanEndpoint(null, 0, "/nonexistent/spamd.sock"));

        var error = Assert.ThrowsAsync<ScanFailedException>(async () =>
            await client.ScanAsync(new ScanRequest(FakeScanner.Message(), spool, "relay.test"), CancellationToken.None));

        Assert.That(error!.Message, Does.StartWith("cannot connect to unix:/nonexistent/spamd.sock"));
    }
}
