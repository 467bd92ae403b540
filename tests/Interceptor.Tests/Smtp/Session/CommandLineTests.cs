using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class CommandLineTests
{
    [Test]
    public async Task A_bare_lf_in_a_command_gets_500_and_the_connection_is_closed()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        // What follows the bare LF could be a smuggled command: it must never be executed.
        await relay.Client.SendAsync("NOOP\nMAIL FROM:<evil@example.org>\r\n");
        var reply = await relay.Client.ReadReplyAsync();

        Assert.That(reply.Text, Does.StartWith("500 "));
        Assert.That(await relay.Client.IsClosedAsync(), Is.True, "nothing after the 500, then the connection closes");
        await Wait.ForAsync(relay.Session, "the session to end");
        Assert.That((await upstream.SessionAsync(0)).Commands, Has.None.StartsWith("MAIL"));
    }

    [Test]
    public async Task A_bare_cr_in_a_command_gets_500_and_the_session_goes_on()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var reply = await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>\rRCPT TO:<b@example.net>");
        var noop = await relay.Client.CommandAsync("NOOP");

        Assert.That(reply.Text, Does.StartWith("500 "));
        Assert.That(noop.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Commands, Has.None.StartsWith("MAIL").And.None.StartsWith("RCPT"));
    }

    [Test]
    public async Task A_nul_byte_in_a_command_gets_500_and_the_session_goes_on()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var reply = await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>\0");
        var noop = await relay.Client.CommandAsync("NOOP");

        Assert.That(reply.Text, Does.StartWith("500 "));
        Assert.That(noop.Code, Is.EqualTo(250));
    }

    [Test]
    public async Task A_command_line_over_the_limit_gets_500_552_and_the_session_goes_on()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        var limit = RelayHarness.Options.Smtp.MaxCommandLine.ToInt32();

        var tooLong = await relay.Client.CommandAsync("MAIL FROM:<" + new string('a', limit) + "@customer.test>");
        var justFits = await relay.Client.CommandAsync("NOOP " + new string('n', limit - "NOOP \r\n".Length));
        var mail = await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");

        Assert.That(tooLong.Text, Does.StartWith("500 5.5.2 "));
        Assert.That(justFits.Code, Is.EqualTo(250), "a line of exactly the limit, CRLF included, is fine");
        Assert.That(mail.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Commands.Count(c => c.StartsWith("MAIL", StringComparison.Ordinal)), Is.EqualTo(1));
    }

    [Test]
    public async Task Commands_out_of_sequence_are_refused_locally()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        Assert.That((await relay.Client.ReadReplyAsync()).Code, Is.EqualTo(220));

        var mailBeforeHelo = await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");
        await relay.Client.CommandAsync("EHLO web1.customer.test");
        var rcptBeforeMail = await relay.Client.CommandAsync("RCPT TO:<b@example.net>");
        var dataBeforeMail = await relay.Client.CommandAsync("DATA");

        Assert.That(mailBeforeHelo.Code, Is.EqualTo(503));
        Assert.That(rcptBeforeMail.Code, Is.EqualTo(503));
        Assert.That(dataBeforeMail.Code, Is.EqualTo(503));
        Assert.That((await upstream.SessionAsync(0)).Commands, Is.EqualTo(new[] { $"EHLO {RelayHarness.HeloName}" }));
    }
}
