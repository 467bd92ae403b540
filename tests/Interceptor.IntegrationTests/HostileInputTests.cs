using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 4, hostile input: what spamware and broken scripts send, from smtpi-alice through the real redirect,
/// raw (Fixtures/hostile_client.py or smtp_dialog.py). The fake MX records every command it gets, so a command
/// that slipped through (split off a bare CR/LF/NUL, smuggled behind DATA, sent before the greeting) shows there.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class HostileInputTests
{
    private const string Mx = "127.0.0.2:25";
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";

    /// <summary>The peak RSS the daemon may reach while it is fed megabytes it must not keep.</summary>
    private const double PeakRssBoundMiB = 250;

    private static TestUser Alice => TestUsers.Alice;

    [Test]
    public async Task Talking_before_the_greeting_gets_554_and_the_connection_is_closed()
    {
        await using var s = await Scenario.StartAsync();
        var dialog = new HostileDialog(Mx, timeoutSeconds: 15, readGreeting: false)
            .Send("EARLY", "EHLO spam.test\r\nMAIL FROM:<spam@evil.test>\r\nRCPT TO:<victim@example.test>\r\n")
            .ReadAll("REPLY");

        var result = await dialog.RunAsync(s.Ns, Alice, s.Dir);

        var context = "\n" + result.Describe() + s.Describe();
        var replies = result.Replies.Where(r => r.Code is not null).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(replies.FirstOrDefault()?.Raw, Does.StartWith("554 5.5.0 ").And.Contain("before the greeting"), "refused, not greeted" + context);
            Assert.That(replies, Has.Count.EqualTo(1), "one reply, nothing after it" + context);
            Assert.That(HostileDialog.EndsClosed(result), Is.True, "and the connection is closed" + context);
            Assert.That(MxCommands(s), Has.None.StartsWith("MAIL").And.None.StartsWith("RCPT"), "nothing the client sent reached the MX" + context);
        });
    }

    [Test]
    public async Task Message_bytes_pipelined_right_after_DATA_get_554_and_nothing_is_relayed()
    {
        await using var s = await Scenario.StartAsync();
        var dialog = new HostileDialog(Mx, timeoutSeconds: 15)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .SendAndRead("MAIL", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT", $"RCPT TO:<{To}>\r\n")
            // DATA and the message in one write, without waiting for 354; a second transaction rides behind it.
            .Send("DATA+BODY", "DATA\r\nSubject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
            .ReadAll("AFTER");

        var result = await dialog.RunAsync(s.Ns, Alice, s.Dir);

        var context = "\n" + result.Describe() + s.Describe();
        var after = result.Replies.Where(r => r.Label == "AFTER" && r.Code is not null).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("RCPT")?.Code, Is.EqualTo(250), context);
            Assert.That(after.FirstOrDefault()?.Raw, Does.StartWith("554 5.5.0 Error: improper command pipelining after DATA"), context);
            Assert.That(after, Has.Count.EqualTo(1), "no 354, no second transaction" + context);
            Assert.That(HostileDialog.EndsClosed(result), Is.True, "the connection is closed" + context);
            Assert.That(s.RequireMx.Messages(), Is.Empty, "nothing relayed" + context);
            Assert.That(MxCommands(s), Has.None.EqualTo("DATA").And.None.Contains("smuggler"), "the MX never got DATA or the smuggled envelope" + context);
        });
    }

    [Test]
    public async Task Bare_cr_and_nul_in_a_command_get_500_a_bare_lf_gets_500_and_closes_and_no_command_is_ever_split_in_two()
    {
        await using var s = await Scenario.StartAsync();
        var dialog = new HostileDialog(Mx, timeoutSeconds: 15)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .SendAndRead("MAIL", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("CR", $"RCPT TO:<{To}>\rRCPT TO:<victim-cr@example.test>\r\n")
            .SendAndRead("NUL", $"RCPT TO:<{To}>\0RCPT TO:<victim-nul@example.test>\r\n")
            .SendAndRead("NOOP", "NOOP\r\n")
            .SendAndRead("LF", $"RCPT TO:<{To}>\nRCPT TO:<victim-lf@example.test>\r\n")
            .ReadAll("AFTER");

        var result = await dialog.RunAsync(s.Ns, Alice, s.Dir);

        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("MAIL")?.Code, Is.EqualTo(250), context);
            Assert.That(result.Reply("CR")?.Raw, Does.StartWith("500 5.5.2 "), "bare CR" + context);
            Assert.That(result.Reply("NUL")?.Raw, Does.StartWith("500 5.5.2 "), "NUL" + context);
            Assert.That(result.Reply("NOOP")?.Code, Is.EqualTo(250), "the session goes on after a bare CR or NUL" + context);
            Assert.That(result.Reply("LF")?.Raw, Does.StartWith("500 5.5.2 "), "bare LF" + context);
            Assert.That(result.Replies.Where(r => r.Label == "AFTER").Select(r => r.Code), Has.None.Not.Null, "nothing answered after the bare LF" + context);
            Assert.That(HostileDialog.EndsClosed(result), Is.True, "a bare LF closes the connection" + context);
            Assert.That(MxCommands(s), Has.None.StartsWith("RCPT"), "no half of a split line reached the MX as a command" + context);
            Assert.That(string.Join("\n", MxCommands(s)), Does.Not.Contain("victim"), context);
        });
    }

    [Test]
    public async Task Bdat_and_starttls_get_502_and_neither_is_offered()
    {
        await using var s = await Scenario.StartAsync();
        var dialog = new HostileDialog(Mx, timeoutSeconds: 15)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .SendAndRead("BDAT", "BDAT 4 LAST\r\n")
            .SendAndRead("STARTTLS", "STARTTLS\r\n")
            .SendAndRead("NOOP", "NOOP\r\n");

        var result = await dialog.RunAsync(s.Ns, Alice, s.Dir);

        var context = "\n" + result.Describe() + s.Describe();
        var keywords = result.Reply("EHLO")?.Lines.Skip(1).Select(l => l[4..].Split(' ')[0]).ToList() ?? [];
        Assert.Multiple(() =>
        {
            Assert.That(keywords, Does.Contain("PIPELINING").And.Contain("SIZE"), context);
            Assert.That(keywords, Has.None.EqualTo("CHUNKING").And.None.EqualTo("STARTTLS").And.None.EqualTo("AUTH"), context);
            Assert.That(result.Reply("BDAT")?.Raw, Does.StartWith("502 5.5.1 "), context);
            Assert.That(result.Reply("STARTTLS")?.Raw, Does.StartWith("502 5.5.1 "), context);
            Assert.That(result.Reply("NOOP")?.Code, Is.EqualTo(250), context);
            Assert.That(MxCommands(s), Has.None.StartsWith("BDAT").And.None.StartsWith("STARTTLS"), context);
        });
    }

    [Test]
    public async Task A_command_line_over_the_limit_and_a_10_MB_line_without_LF_get_500_552_and_the_session_still_relays()
    {
        await using var s = await Scenario.StartAsync();
        var pid = DaemonPid(s);
        var before = ProcessMemory.Of(pid);
        var body = TestMessage.Small(From, To, "after-long-lines");
        var dialog = new HostileDialog(Mx, timeoutSeconds: 60)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .SendAndRead("LONG", "NOOP " + new string('a', 3000) + "\r\n")
            .SendPattern("HUGE", "A", 10L * 1024 * 1024)
            .SendAndRead("HUGE", "\r\n")
            .SendAndRead("NOOP", "NOOP\r\n")
            .SendAndRead("MAIL", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT", $"RCPT TO:<{To}>\r\n")
            .SendAndRead("DATA", "DATA\r\n")
            .SendAndRead("BODY", Encoding.Latin1.GetString([.. TestMessage.DotStuff(body), .. ".\r\n"u8]))
            .SendAndRead("QUIT", "QUIT\r\n");

        var result = await dialog.RunAsync(s.Ns, Alice, s.Dir);
        var after = ProcessMemory.Of(pid);

        await TestContext.Out.WriteLineAsync($"daemon memory: at ready {before}; after a 3000-byte command line and a 10 MiB line without LF {after}");
        var context = $"\nmemory before {before}, after {after}\n{result.Describe()}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("LONG")?.Raw, Does.StartWith("500 5.5.2 ").And.Contain("longer than 2048"), context);
            Assert.That(result.Reply("HUGE")?.Raw, Does.StartWith("500 5.5.2 "), context);
            Assert.That(result.Reply("NOOP")?.Code, Is.EqualTo(250), "in sync after the long lines" + context);
            Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), "and a message still goes through" + context);
            Assert.That(after.PeakMiB, Is.LessThan(PeakRssBoundMiB), "peak RSS stays bounded" + context);
            Assert.That(after.PeakMiB - before.PeakMiB, Is.LessThan(64), "a 10 MiB line is discarded, not kept" + context);
        });
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), Alice, body, context);
    }

    [Test]
    public async Task A_200_KB_header_block_a_declared_SIZE_and_a_200_MB_body_over_the_limit_get_552_534_with_bounded_memory()
    {
        const int limit = 100_000;
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { MessageSizeBytes = limit });
        var pid = DaemonPid(s);
        var before = ProcessMemory.Of(pid);
        const string headerLine = "X-Filler: 0123456789012345678901234567890123456789012345678901234567\r\n";
        const string bodyLine = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
        var small = TestMessage.Small(From, To, "after-oversized");
        var dialog = new HostileDialog(Mx, timeoutSeconds: 90)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .SendAndRead("SIZE", $"MAIL FROM:<{From}> SIZE={limit + 1}\r\n")
            .SendAndRead("MAIL1", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT1", $"RCPT TO:<{To}>\r\n")
            .SendAndRead("DATA1", "DATA\r\n")
            .SendPattern("HEADERS", headerLine, headerLine.Length * (200_000 / headerLine.Length + 1))
            .SendAndRead("HEADERS", "Subject: header block\r\n\r\nbody\r\n.\r\n")
            .SendAndRead("MAIL2", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT2", $"RCPT TO:<{To}>\r\n")
            .SendAndRead("DATA2", "DATA\r\n")
            .Send("BODY", "Subject: big\r\n\r\n")
            .SendPattern("BODY", bodyLine, bodyLine.Length * (200L * 1024 * 1024 / bodyLine.Length))
            .SendAndRead("BODY", ".\r\n")
            .SendAndRead("MAIL3", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT3", $"RCPT TO:<{To}>\r\n")
            .SendAndRead("DATA3", "DATA\r\n")
            .SendAndRead("SMALL", Encoding.Latin1.GetString([.. TestMessage.DotStuff(small), .. ".\r\n"u8]));

        var result = await dialog.RunAsync(s.Ns, Alice, s.Dir);
        var after = ProcessMemory.Of(pid);

        await TestContext.Out.WriteLineAsync($"daemon memory: at ready {before}; after a 200 KB header block and a 200 MiB body {after}; dialog took {result.ElapsedSeconds:F1} s");
        var context = $"\nmemory before {before}, after {after}\n{result.Describe()}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("EHLO")?.Lines, Does.Contain($"250-SIZE {limit}"), context);
            Assert.That(result.Reply("SIZE")?.Raw, Does.StartWith("552 5.3.4 ").And.Contain($"limit of {limit} bytes"), context);
            Assert.That(result.Reply("HEADERS")?.Raw, Does.StartWith("552 5.3.4 "), "a 200 KB header block is over a 100 KB limit" + context);
            Assert.That(result.Reply("BODY")?.Raw, Does.StartWith("552 5.3.4 "), context);
            Assert.That(result.Reply("SMALL")?.Code, Is.EqualTo(250), "the session stays in sync after both refusals" + context);
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(1), "only the small message was relayed" + context);
            Assert.That(after.PeakMiB, Is.LessThan(PeakRssBoundMiB), "peak RSS stays bounded while 200 MiB stream through" + context);
            Assert.That(after.PeakMiB - before.PeakMiB, Is.LessThan(64), "memory does not grow with the message" + context);
        });
    }

    [Test]
    public async Task A_101st_and_later_recipients_get_452_and_the_first_100_are_relayed()
    {
        await using var s = await Scenario.StartAsync();
        var recipients = Enumerable.Range(1, 105).Select(i => $"r{i}@example.test").ToList();
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, recipients[0], "105-recipients"));

        var result = await Clients.DialogAsync(s.Ns, Alice, s.Dir, SmtpDialog.Transaction(Mx, From, recipients, body, timeoutSeconds: 30));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(recipients[..100].Select(r => result.Reply("RCPT " + r)?.Code), Has.All.EqualTo(250), context);
            Assert.That(recipients[100..].Select(r => result.Reply("RCPT " + r)?.Raw), Has.All.StartWith("452 4.5.3 "), context);
            Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
        });
        Assert.That(s.RequireMx.Messages().Single().RcptTo, Is.EqualTo(recipients[..100]), "the first 100 are kept" + context);
    }

    /// <summary>
    /// RFC 5321 4.5.3.1.10: a client that meets the recipient limit sends the rest in another transaction. A
    /// mailer with 125 BCC recipients gets 452 for 25 of them; those 452s must not count as an error storm.
    /// </summary>
    [Test]
    public async Task Recipients_over_the_limit_do_not_count_as_errors_that_end_the_session()
    {
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Smtp.ErrorDelayMilliseconds", 20)));
        var recipients = Enumerable.Range(1, 125).Select(i => $"r{i}@example.test").ToList();
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, recipients[0], "125-recipients"));

        var result = await Clients.DialogAsync(s.Ns, Alice, s.Dir, SmtpDialog.Transaction(Mx, From, recipients, body, timeoutSeconds: 30));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(recipients[100..].Select(r => result.Reply("RCPT " + r)?.Raw), Has.All.StartWith("452 4.5.3 "), context);
            Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), "the first 100 recipients' message is delivered" + context);
            Assert.That(s.RequireMx.Messages().SingleOrDefault()?.RcptTo, Is.EqualTo(recipients[..100]), context);
        });
    }

    [Test]
    public async Task Malformed_paths_get_501_or_553_and_never_reach_the_upstream()
    {
        await using var s = await Scenario.StartAsync();
        var longLocal = new string('l', 65) + "@example.test";
        var longDomain = "d@" + string.Join(".", Enumerable.Repeat(new string('x', 63), 4)) + ".test";
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "malformed-paths"));
        var dialog = new SmtpDialog(Mx, timeoutSeconds: 20)
            .Send("EHLO", "EHLO client.test\r\n")
            .Send("MAIL long local", $"MAIL FROM:<{longLocal}>\r\n", expect: "5")
            .Send("MAIL", $"MAIL FROM:<{From}>\r\n")
            .Send("RCPT long local", $"RCPT TO:<{longLocal}>\r\n", expect: "5")
            .Send("RCPT long domain", $"RCPT TO:<{longDomain}>\r\n", expect: "5")
            .Send("RCPT percent", "RCPT TO:<victim%elsewhere.test@example.test>\r\n", expect: "5")
            .Send("RCPT bang", "RCPT TO:<elsewhere.test!victim@example.test>\r\n", expect: "5")
            .Send("RCPT", $"RCPT TO:<{To}>\r\n")
            .Send("DATA", "DATA\r\n", expect: "3")
            .SendFile("BODY", body)
            .Send("QUIT", "QUIT\r\n");

        var result = await Clients.DialogAsync(s.Ns, Alice, s.Dir, dialog);

        var context = $"\ndomain length {longDomain.Length - 2}\n{result.Describe()}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(result.StoppedAt, Is.Null, context);
            Assert.That(result.Reply("MAIL long local")?.Raw, Does.StartWith("501 5.1.3 "), "local part > 64" + context);
            Assert.That(result.Reply("RCPT long local")?.Raw, Does.StartWith("501 5.1.3 "), "local part > 64" + context);
            Assert.That(result.Reply("RCPT long domain")?.Raw, Does.StartWith("501 5.1.3 "), "domain > 255" + context);
            Assert.That(result.Reply("RCPT percent")?.Raw, Does.StartWith("553 5.1.3 "), "% routing" + context);
            Assert.That(result.Reply("RCPT bang")?.Raw, Does.StartWith("553 5.1.3 "), "! routing" + context);
            Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
            Assert.That(s.RequireMx.Messages().Single().RcptTo, Is.EqualTo(new[] { To }), context);
            Assert.That(string.Join("\n", MxCommands(s)), Does.Not.Contain("victim").And.Not.Contain("lllll").And.Not.Contain("xxxxx"), context);
        });
    }

    /// <summary>Every command line the fake MX received (from the daemon).</summary>
    private static IReadOnlyList<string> MxCommands(Scenario s) =>
        [.. s.RequireMx.Events().Where(e => e.GetProperty("kind").GetString() == "command").Select(e => e.GetProperty("line").GetString() ?? "")];

    private static int DaemonPid(Scenario s)
    {
        var pid = s.RequireDaemon.Process.ProcessId;
        Assert.That(ProcessMemory.CommandLineOf(pid), Does.Contain("smtp-interceptor.dll"), "the harness's pid is the daemon itself");
        return pid;
    }
}
