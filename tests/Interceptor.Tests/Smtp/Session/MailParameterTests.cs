using System.Text;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class MailParameterTests
{
    private static readonly UpstreamScript Plain = new() { Extensions = ["PIPELINING", "ENHANCEDSTATUSCODES"] };

    [TestCase("BODY=8BITMIME", "554 5.6.3 ")]
    [TestCase("SMTPUTF8", "553 5.6.7 ")]
    [TestCase("FOO=bar", "555 5.5.4 ")]
    [TestCase("BODY=BINARYMIME", "555 5.5.4 ")]
    public async Task A_parameter_the_upstream_cannot_honour_is_refused_before_it_reaches_the_upstream(string parameter, string expected)
    {
        await using var upstream = new ScriptedUpstream(Plain);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var reply = await relay.Client.CommandAsync($"MAIL FROM:<alice@customer.test> {parameter}");
        var plain = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");

        Assert.That(reply.Text, Does.StartWith(expected));
        Assert.That(plain.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Commands.Where(c => c.StartsWith("MAIL", StringComparison.Ordinal)),
            Is.EqualTo(new[] { "MAIL FROM:<alice@customer.test>" }));
    }

    [Test]
    public async Task An_unknown_parameter_is_refused_even_when_the_upstream_supports_everything()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var reply = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test> XTRACE=1");

        Assert.That(reply.Text, Does.StartWith("555 5.5.4 "));
        Assert.That((await upstream.SessionAsync(0)).Commands, Has.None.StartsWith("MAIL"));
    }

    [Test]
    public async Task Supported_parameters_are_passed_on_in_the_upstreams_mail_line()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var mail = await relay.Client.CommandAsync("MAIL FROM:<jörg@exämple.test> SIZE=500 BODY=8BITMIME SMTPUTF8");
        var rcpt = await relay.Client.CommandAsync("RCPT TO:<zoë@bücher.example>");
        var data = await relay.Client.CommandAsync("DATA");
        const string body = "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, 8-bit bytes unchanged\r\n";
        await relay.Client.SendAsync(body + ".\r\n");
        var final = await relay.Client.ReadReplyAsync();

        Assert.That(mail.Code, Is.EqualTo(250), mail.Text);
        Assert.That(rcpt.Code, Is.EqualTo(250), rcpt.Text);
        Assert.That(data.Code, Is.EqualTo(354));
        Assert.That(final.Code, Is.EqualTo(250));
        var session = await upstream.SessionAsync(0);
        Assert.That(session.Commands, Does.Contain("MAIL FROM:<jörg@exämple.test> SIZE=500 BODY=8BITMIME SMTPUTF8"));
        Assert.That(session.Commands, Does.Contain("RCPT TO:<zoë@bücher.example>"));
        Assert.That(RelayHarness.SplitTraceHeader(session.Messages.Single()).Body, Is.EqualTo(Encoding.UTF8.GetBytes(body)));
    }

    [Test]
    public async Task Size_and_body_7bit_are_dropped_for_an_upstream_that_does_not_know_them()
    {
        await using var upstream = new ScriptedUpstream(Plain);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var mail = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test> SIZE=500 BODY=7BIT");

        Assert.That(mail.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Commands, Does.Contain("MAIL FROM:<alice@customer.test>"));
    }

    [Test]
    public async Task Rcpt_parameters_are_refused_with_555()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");

        var rcpt = await relay.Client.CommandAsync("RCPT TO:<bob@example.net> NOTIFY=NEVER");

        Assert.That(rcpt.Text, Does.StartWith("555 5.5.4 "));
        Assert.That((await upstream.SessionAsync(0)).Commands, Has.None.StartsWith("RCPT"));
    }
}
