using System.Text;
using Interceptor.Core.Options;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>SMTP smuggling (SEC Consult, 2023): no end-of-data the upstream might honour may hide in a body.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class DataSmugglingTests
{
    private const string Smuggled = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nFrom: ceo@bank.example\r\n\r\nsmuggled\r\n";

    [TestCase("\r\n.\n", TestName = "Smuggling with CRLF dot LF is re-stuffed into the one message")]
    [TestCase("\n.\r\n", TestName = "Smuggling with LF dot CRLF is re-stuffed into the one message")]
    [TestCase("\n.\n", TestName = "Smuggling with LF dot LF is re-stuffed into the one message")]
    public async Task Smuggling(string fakeEnd)
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: s\r\n\r\nline" + fakeEnd + Smuggled);
        var noop = await relay.Client.CommandAsync("NOOP");

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        Assert.That(noop.Code, Is.EqualTo(250), "exactly one reply for the one message");
        var session = await upstream.SessionAsync(0);
        Assert.That(session.Commands.Count(c => c.StartsWith("MAIL", StringComparison.Ordinal)), Is.EqualTo(1), "no smuggled MAIL command");
        Assert.That(session.Commands.Count(c => c == "DATA"), Is.EqualTo(1));
        Assert.That(session.Messages, Has.Count.EqualTo(1));
        var body = Encoding.UTF8.GetString(RelayHarness.SplitTraceHeader(session.Messages[0]).Body);
        Assert.That(body, Is.EqualTo("Subject: s\r\n\r\nline\r\n..\r\n" + Smuggled), "the lone dot re-stuffed, bare LFs made CRLF");
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Bare_lf_line_endings_are_relayed_as_crlf_and_the_message_goes_through()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: legacy\n\nwritten by a PHP script\n.. stuffed\r\n");

        Assert.That(final.Code, Is.EqualTo(250));
        var body = Encoding.UTF8.GetString(RelayHarness.SplitTraceHeader((await upstream.SessionAsync(0)).Messages.Single()).Body);
        Assert.That(body, Is.EqualTo("Subject: legacy\r\n\r\nwritten by a PHP script\r\n.. stuffed\r\n"));
    }

    [TestCase("line\r.\r" + Smuggled, TestName = "A body with CR dot CR is refused with 550 and nothing is relayed")]
    [TestCase("a bare\rcarriage return\r\n", TestName = "A body with a bare CR is refused with 550 and nothing is relayed")]
    [TestCase("a NUL\0byte\r\n", TestName = "A body with a NUL byte is refused with 550 and nothing is relayed")]
    public async Task Refused(string bodyTail)
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript(), new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: s\r\n\r\n" + bodyTail);

        Assert.That(final.Text, Does.StartWith("550 5.6.0 "));
        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the relay to drop the upstream"), Is.EqualTo(UpstreamEnd.Reset));
        Assert.That(session.Messages, Is.Empty, "the upstream saw no final dot");
        Assert.That(session.Commands.Count(c => c.StartsWith("MAIL", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That((await relay.Client.CommandAsync("NOOP")).Code, Is.EqualTo(250), "the session stays in step");
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Reply, Does.StartWith("550 5.6.0"));
    }

    [Test]
    public async Task A_data_line_over_the_limit_is_refused_with_550_and_nothing_is_relayed()
    {
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { MaxDataLine = ByteSize.FromBytes(1000) } };
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: s\r\n\r\n" + new string('z', 1200) + "\r\n");

        Assert.That(final.Text, Does.StartWith("550 5.6.0 "));
        Assert.That((await upstream.SessionAsync(0)).Messages, Is.Empty);
    }

    [Test]
    public async Task Commands_pipelined_after_the_real_end_of_data_are_commands_again()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        await client.CommandAsync("DATA");

        await client.SendAsync("Subject: s\r\n\r\nbody\r\n.\r\nNOOP\r\nMAIL FROM:<second@customer.test>\r\n");
        var final = await client.ReadReplyAsync();
        var noop = await client.ReadReplyAsync();
        var mail = await client.ReadReplyAsync();

        Assert.That(final.Code, Is.EqualTo(250));
        Assert.That(noop.Text, Is.EqualTo("250 2.0.0 Ok"));
        Assert.That(mail.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Commands, Does.Contain("MAIL FROM:<second@customer.test>"));
    }
}
