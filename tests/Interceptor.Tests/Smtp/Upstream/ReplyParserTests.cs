using System.Text;
using Interceptor.Smtp.IO;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Tests.Smtp.Upstream;

public class ReplyParserTests
{
    private static Task<Interceptor.Core.Replies.SmtpReply> Parse(string wire) =>
        ReplyParser.ReadAsync(new LineReader(new MemoryStream(Encoding.UTF8.GetBytes(wire))), TimeSpan.FromSeconds(1), CancellationToken.None).AsTask();

    [Test]
    public async Task Splits_off_the_enhanced_code_and_keeps_the_text_verbatim()
    {
        var reply = await Parse("550 5.1.1 <x@y>: Recipient address rejected: User unknown\r\n");

        Assert.That(reply.Code, Is.EqualTo(550));
        Assert.That(reply.EnhancedCode, Is.EqualTo("5.1.1"));
        Assert.That(reply.Text, Is.EqualTo("<x@y>: Recipient address rejected: User unknown"));
        Assert.That(reply.ToWire(), Is.EqualTo("550 5.1.1 <x@y>: Recipient address rejected: User unknown\r\n"));
    }

    [Test]
    public async Task Reads_a_multi_line_reply_and_writes_it_back_identically()
    {
        const string wire = "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
        var reply = await Parse(wire);

        Assert.That(reply.Lines, Is.EqualTo(new[] { "mx.example", "PIPELINING", "SIZE 1000" }));
        Assert.That(reply.ToWire(), Is.EqualTo(wire));
    }

    [Test]
    public async Task A_reply_without_enhanced_code_stays_as_it_was()
    {
        var reply = await Parse("250 Ok\r\n");

        Assert.That(reply.EnhancedCode, Is.Null);
        Assert.That(reply.ToWire(), Is.EqualTo("250 Ok\r\n"));
    }

    [Test]
    public async Task An_enhanced_code_of_the_wrong_class_is_text()
    {
        var reply = await Parse("451 5.1.1 odd\r\n");

        Assert.That(reply.EnhancedCode, Is.Null);
        Assert.That(reply.Text, Is.EqualTo("5.1.1 odd"));
    }

    [Test]
    public async Task A_control_character_in_a_reply_line_is_relayed_and_stored_as_a_question_mark()
    {
        // NUL and a bare CR on CRLF lines, a bare CR on a line ended by a bare LF, ESC, DEL, the ends of both ranges; a tab, an é and a no-break space stay.
        var reply = await Parse("550-5.7.1 no\0more\r\n550-5.7.1 bare\rCR\r\n550-5.7.1 lf\rend\n550-5.7.1 \u001b[2Jx\u007f\u009b\u00e9\u001f\u0080\u009f\u00a0\r\n550 5.7.1 tab\there\r\n");

        Assert.That(reply.EnhancedCode, Is.EqualTo("5.7.1"));
        Assert.That(reply.Lines, Is.EqualTo(new[] { "no?more", "bare?CR", "lf?end", "?[2Jx??\u00e9???\u00a0", "tab\there" }));
        Assert.That(reply.ToWire(), Is.EqualTo("550-5.7.1 no?more\r\n550-5.7.1 bare?CR\r\n550-5.7.1 lf?end\r\n550-5.7.1 ?[2Jx??\u00e9???\u00a0\r\n550 5.7.1 tab\there\r\n"));
    }

    [Test]
    public async Task A_bare_code_is_a_reply()
    {
        Assert.That((await Parse("354\r\n")).Code, Is.EqualTo(354));
    }

    [TestCase("hello\r\n")]
    [TestCase("25 short\r\n")]
    [TestCase("999 out of range\r\n")]
    [TestCase("250-a\r\n251 b\r\n")]
    public void Garbage_is_a_protocol_fault(string wire)
    {
        Assert.ThrowsAsync<UpstreamProtocolException>(() => Parse(wire));
    }

    [Test]
    public void A_closed_connection_is_a_lost_connection()
    {
        Assert.ThrowsAsync<UpstreamConnectionLostException>(() => Parse("250-partial\r\n"));
    }

    [Test]
    public void Capabilities_are_read_from_the_ehlo_reply()
    {
        var capabilities = UpstreamCapabilities.FromEhlo(["mx", "SIZE 5000", "8BITMIME", "starttls", "PIPELINING"]);

        Assert.That(capabilities.MaxSize, Is.EqualTo(5000));
        Assert.That(capabilities.EightBitMime, Is.True);
        Assert.That(capabilities.StartTls, Is.True);
        Assert.That(capabilities.SmtpUtf8, Is.False);
    }

    // Each case: the reply's lines as received, and the enhanced code split off (null: every line kept verbatim).
    [TestCase(550, new[] { "5.1.1" }, "5.1.1", new[] { "" })]
    [TestCase(550, new[] { "5.1.1 no" }, "5.1.1", new[] { "no" })]
    [TestCase(250, new[] { "2.0.0 Ok: queued", "2.0.0 more" }, "2.0.0", new[] { "Ok: queued", "more" })]
    [TestCase(550, new[] { "5.123.456 x" }, "5.123.456", new[] { "x" })]
    [TestCase(550, new[] { "5.1.1x y" }, null, null)]
    [TestCase(550, new[] { "5.1234.1 y" }, null, null)]
    [TestCase(550, new[] { "5.1.1234 y" }, null, null)]
    [TestCase(550, new[] { "5..1 y" }, null, null)]
    [TestCase(550, new[] { "5.1. y" }, null, null)]
    [TestCase(550, new[] { "5.1.1.1 y" }, null, null)]
    [TestCase(550, new[] { "05.1.1 y" }, null, null)]
    [TestCase(550, new[] { "5.a.1 y" }, null, null)]
    [TestCase(550, new[] { "5.1.1 a", "5.1.2 b" }, null, null)]
    [TestCase(550, new[] { "5.1.1 a", "5.1.10 b" }, null, null)]
    [TestCase(550, new[] { "5.1.1 a", "no code" }, null, null)]
    [TestCase(550, new[] { "no code", "5.1.1 b" }, null, null)]
    [TestCase(550, new[] { "5.1.1 a", "5.1.1" }, "5.1.1", new[] { "a", "" })]
    [TestCase(250, new[] { "" }, null, null)]
    public void An_enhanced_code_is_split_off_only_when_every_line_carries_the_same_valid_one(
        int code, string[] lines, string? enhanced, string[]? stripped)
    {
        var reply = ReplyParser.Build(code, lines);

        Assert.That(reply.EnhancedCode, Is.EqualTo(enhanced));
        Assert.That(reply.Lines, Is.EqualTo(stripped ?? lines));
    }
}

/// <summary>An upstream that sends its reply a byte at a time, over a real loopback connection.</summary>
public class ReplyParserDeadlineTests
{
    [Test]
    public async Task A_reply_trickled_a_byte_at_a_time_gets_one_deadline_for_all_of_it_not_one_per_read()
    {
        // Each byte, and each line (350 ms), comes within the timeout, so a timeout per read or per line would wait for
        // all 2.1 s of it: a customer's MX could stretch a transaction as long as it liked, past what the quota history
        // counts back.
        var timeout = TimeSpan.FromMilliseconds(600);
        var wire = Encoding.ASCII.GetBytes("250-a\r\n250-b\r\n250-c\r\n250-d\r\n250-e\r\n250 f\r\n");
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, ((System.Net.IPEndPoint)listener.LocalEndpoint).Port);
        using var served = await listener.AcceptTcpClientAsync();
        using var stop = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            var stream = served.GetStream();
            foreach (var b in wire)
            {
                await stream.WriteAsync(new[] { b }, stop.Token);
                await Task.Delay(50, stop.Token);
            }
        });

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failure = Assert.ThrowsAsync<UpstreamTimeoutException>(async () =>
            await ReplyParser.ReadAsync(new LineReader(client.GetStream()), timeout, CancellationToken.None));
        var took = clock.Elapsed;
        await stop.CancelAsync();
        try
        {
            await trickle;
        }
        catch (OperationCanceledException)
        {
            // Stopped mid-reply, as meant.
        }

        Assert.That(failure!.Message, Does.Contain("no reply within"));
        Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(1.8)), "the whole reply took 2.1 s to come");
        Assert.That(took, Is.GreaterThanOrEqualTo(timeout - TimeSpan.FromMilliseconds(20)));
    }
}
