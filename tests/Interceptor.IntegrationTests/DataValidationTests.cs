using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// DATA as a hostile client sends it: SMTP smuggling sequences, NUL bytes and oversized messages,
/// sent raw (no client-side normalisation) as smtpi-alice. The fake MX ends DATA only at CRLF.CRLF
/// like a strict MTA, so whatever it records is exactly what the daemon relayed.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class DataValidationTests
{
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private const string Smuggler = "smuggler@evil.test";
    private const string Victim = "victim@example.test";

    private const string RealPart =
        "From: <alice@client.test>\r\nTo: <rcpt@example.test>\r\nSubject: real message\r\n\r\nreal body line\r\ntext before";

    // What a smuggling attack hopes the upstream reads as a second transaction.
    private const string SmuggledPart =
        "MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n" +
        "From: <ceo@example.test>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n";

    /// <summary>The sequences are named, not written, so test names stay printable: "CRLF.LF" is "\r\n.\n".</summary>
    [TestCase("LF.LF")]
    [TestCase("CR.CR")]
    [TestCase("CRLF.LF")]
    [TestCase("LF.CRLF")]
    [TestCase("CR.LF")]
    [TestCase("LF.CR")]
    [TestCase("CR.CRLF")]
    [TestCase("CRLF.CR")]
    public async Task Smuggled_end_of_data_never_starts_a_second_message(string sequenceName)
    {
        var sequence = Decode(sequenceName);
        var content = RealPart + sequence + SmuggledPart;
        await using var s = await Scenario.StartAsync();
        var body = s.Dir.Write("smuggle.txt", Encoding.ASCII.GetBytes(content + ".\r\n"));
        var dialog = new SmtpDialog("127.0.0.2:25", timeoutSeconds: 20)
            .Send("EHLO", "EHLO client.test\r\n")
            .Send("MAIL", $"MAIL FROM:<{From}>\r\n")
            .Send("RCPT", $"RCPT TO:<{To}>\r\n")
            .Send("DATA", "DATA\r\n", expect: "3")
            .SendFile("BODY", body, expect: "2345")
            .SendAndReadAll("QUIT", "QUIT\r\n");

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, dialog);

        var context = $"\nsequence {sequenceName}\n{result.Describe()}{s.Describe()}";
        var messages = s.RequireMx.Messages();
        // The security property, whatever the daemon chose to do with the sequence.
        Assert.Multiple(() =>
        {
            Assert.That(messages, Has.Count.LessThanOrEqualTo(1), "at most one message" + context);
            Assert.That(messages.Where(m => m.MailFrom == Smuggler || m.RcptTo.Contains(Victim)), Is.Empty, "a smuggled envelope reached the MX" + context);
            Assert.That(messages.Where(m => m.HeaderSection.Contains("Subject: smuggled", StringComparison.Ordinal) || m.HeaderSection.Contains("ceo@example.test", StringComparison.Ordinal)),
                Is.Empty, "smuggled headers reached the MX as headers" + context);
            Assert.That(s.RequireMx.Events().Count(e => e.GetProperty("kind").GetString() == "command" && e.GetProperty("line").GetString()!.StartsWith("MAIL", StringComparison.Ordinal)),
                Is.LessThanOrEqualTo(1), "the MX saw a second MAIL command" + context);
        });

        // The contract on top of it: bare CR is refused outright; bare LF is normalised and relayed.
        if (HasBareCr(content))
        {
            Assert.That(result.Reply("BODY")?.Raw, Does.StartWith("550 5.6.0"), "bare CR in DATA is refused with 550 5.6.0" + context);
            Assert.That(messages, Is.Empty, "nothing relayed after a 550" + context);
            return;
        }

        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), "bare LF is normalised, the message relayed" + context);
        Assert.That(messages, Has.Count.EqualTo(1), context);
        var relayed = messages[0];
        Assert.That(relayed.MailFrom, Is.EqualTo(From), context);
        var header = TraceHeader.TryParse(relayed.FirstLine);
        Assert.That(header?.Uid, Is.EqualTo(TestUsers.Alice.Uid), context);
        var afterHeader = relayed.Bytes[(Encoding.UTF8.GetByteCount(relayed.FirstLine) + 2)..];
        var normalised = TestMessage.NormaliseLf(Encoding.ASCII.GetBytes(content));
        // "\r\n.\n": the client's dot starts a CRLF line, so a daemon may unstuff it before normalising; both are sound.
        var unstuffed = TestMessage.NormaliseLf(Encoding.ASCII.GetBytes(content.Replace("\r\n.\n", "\r\n\n", StringComparison.Ordinal)));
        Assert.That(afterHeader, Is.EqualTo(normalised).Or.EqualTo(unstuffed),
            "relayed body must be the sent body with bare LF → CRLF and the lone dot kept as text" + context +
            "\ngot: " + TestMessage.Excerpt(afterHeader, RealPart.Length));
    }

    [Test]
    public async Task Nul_byte_in_data_is_refused_with_550_and_nothing_is_relayed()
    {
        await using var s = await Scenario.StartAsync();
        var body = s.Dir.Write("nul.txt", Encoding.ASCII.GetBytes("Subject: nul\r\n\r\nbefore\0after\r\n.\r\n"));

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction("127.0.0.2:25", From, [To], body, timeoutSeconds: 20));

        Assert.That(result.Reply("BODY")?.Raw, Does.StartWith("550 5.6.0"), result.Describe() + s.Describe());
        Assert.That(s.RequireMx.Messages(), Is.Empty, s.Describe());
    }

    [Test]
    public async Task Oversized_message_gets_552_and_the_session_stays_in_sync()
    {
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { MessageSizeBytes = 100_000 });
        var message = TestMessage.Build(From, To, "too-big", attachmentBytes: 300_000);

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, message), timeoutSeconds: 20));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("BODY")?.Raw, Does.StartWith("552 5.3.4"), context);
            // If the daemon stopped reading at the limit and parsed the rest as commands, QUIT would not get 221.
            Assert.That(result.Reply("QUIT")?.Code, Is.EqualTo(221), "the session must stay in sync after the refusal" + context);
            Assert.That(s.RequireMx.Messages(), Is.Empty, context);
        });
    }

    /// <summary>
    /// The limit is on the message (RFC 1870: CRLFs counted, transparency dots not), so a message of
    /// exactly the limit passes even when many of its lines start with a dot; one byte more does not.
    /// </summary>
    [TestCase(0, 250)]
    [TestCase(1, 552)]
    public async Task Size_limit_counts_the_message_not_its_dot_stuffed_wire_form(int overLimit, int expectedCode)
    {
        const int limit = 20_000;
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { MessageSizeBytes = limit });
        var message = ExactSizeWithDotLines(limit + overLimit);

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, message), timeoutSeconds: 20));

        var context = $"\n{message.Length}-byte message ({TestMessage.DotStuff(message).Length} dot-stuffed), limit {limit}\n{result.Describe()}{s.Describe()}";
        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(expectedCode), context);
        Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(expectedCode == 250 ? 1 : 0), context);
    }

    [Test]
    public async Task Message_whose_first_line_starts_with_a_dot_is_unstuffed_like_every_other_line()
    {
        await using var s = await Scenario.StartAsync();
        // The first line has no CRLF before its dot: a reader that unstuffs only after a CRLF misses it (SmtpServer 11.1's
        // does); our DATA filter must unstuff it like every other line.
        var message = Encoding.ASCII.GetBytes(".first line starts with a dot\r\nSubject: dot first\r\n\r\nbody\r\n");

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, message), timeoutSeconds: 20));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), TestUsers.Alice, message, context);
    }

    [Test]
    public async Task Recipients_over_the_limit_are_refused_and_the_rest_are_relayed()
    {
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { RecipientsPerMessage = 2 });
        string[] recipients = ["one@example.test", "two@example.test", "three@example.test"];
        var message = TestMessage.Small(From, To, "rcpt-limit");

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, recipients, Clients.WriteStuffedBody(s.Dir, message), timeoutSeconds: 20));

        var context = "\n" + result.Describe() + s.Describe();
        var third = result.Reply("RCPT three@example.test");
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("RCPT two@example.test")?.Code, Is.EqualTo(250), context);
            Assert.That(third?.Code, Is.InRange(400, 599), "the third recipient is over the limit" + context);
            Assert.That(third?.Text, Has.Length.GreaterThan(8), "with a reason" + context);
            Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
        });
        Assert.That(s.RequireMx.Messages().Single().RcptTo, Is.EqualTo(recipients[..2]), context);
    }

    /// <summary>A message of exactly <paramref name="size"/> bytes in which most lines start with a dot.</summary>
    private static byte[] ExactSizeWithDotLines(int size)
    {
        var text = new StringBuilder("Subject: size boundary\r\n\r\n");
        while (text.Length + 40 < size)
        {
            text.Append(".dot line ").Append(text.Length.ToString("D10", System.Globalization.CultureInfo.InvariantCulture)).Append("\r\n");
        }

        text.Append(new string('x', size - text.Length - 2)).Append("\r\n");
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    private static string Decode(string name)
    {
        var parts = name.Split('.');
        static string One(string part) => part switch
        {
            "CRLF" => "\r\n",
            "CR" => "\r",
            "LF" => "\n",
            _ => throw new ArgumentException(part),
        };
        return One(parts[0]) + "." + One(parts[1]);
    }

    private static bool HasBareCr(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\r' && (i + 1 >= text.Length || text[i + 1] != '\n'))
            {
                return true;
            }
        }

        return false;
    }
}
