using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Events;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class UpstreamFailureTests
{
    [TestCase("451 4.3.0 Error: queue file write error, try again", TransactionOutcome.Deferred)]
    [TestCase("554 5.7.1 Message rejected: looks like spam to the scripted one", TransactionOutcome.Rejected)]
    public async Task The_upstreams_verdict_after_the_final_dot_reaches_the_client_verbatim(string verdict, TransactionOutcome outcome)
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { FinalReply = verdict });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(final.Text, Is.EqualTo(verdict));
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Reply, Is.EqualTo(verdict));
        Assert.That(relay.Recorder.Events.Single().Outcome, Is.EqualTo(outcome));
        Assert.That((await relay.Client.CommandAsync("NOOP")).Code, Is.EqualTo(250), "the session goes on");
    }

    [Test]
    public async Task A_refusal_at_data_instead_of_354_reaches_the_client_and_no_body_is_expected()
    {
        const string refusal = "554 5.7.1 <DATA>: Data command rejected: scripted policy";
        await using var upstream = new ScriptedUpstream(new UpstreamScript { DataReply = refusal });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await relay.Client.CommandAsync("RCPT TO:<bob@example.net>");

        var data = await relay.Client.CommandAsync("DATA");

        Assert.That(data.Text, Is.EqualTo(refusal));
        Assert.That((await relay.Client.CommandAsync("NOOP")).Code, Is.EqualTo(250), "the next line is a command again");
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Reply, Is.EqualTo(refusal));
    }

    [Test]
    
    public async Task After_a_refused_data_the_clients_rset_reaches_the_upstream_so_the_next_mail_works()
    {
        // Postfix keeps the transaction open after refusing DATA (smtpd_data_restrictions, milters): a direct
        // client recovers with RSET. Through the relay that RSET must reach the upstream too.
        var script = new UpstreamScript { DataReply = "554 5.7.1 <DATA>: Data command rejected", StatefulTransaction = true };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        Assert.That((await client.CommandAsync("DATA")).Code, Is.EqualTo(554));

        var rset = await client.CommandAsync("RSET");
        var mail = await client.CommandAsync("MAIL FROM:<alice@customer.test>");

        Assert.That(rset.Code, Is.EqualTo(250));
        Assert.That(mail.Code, Is.EqualTo(250), $"the upstream still holds the old transaction: {mail.Text}");
        Assert.That((await upstream.SessionAsync(0)).Commands, Does.Contain("RSET"));
    }

    [Test]
    public async Task Upstream_not_listening_gives_421_441_and_the_connection_closes()
    {
        IPEndPoint closed;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            closed = (IPEndPoint)probe.LocalEndpoint;
        }

        await using var relay = await RelayHarness.StartAsync(closed);

        var greeting = await relay.Client.ReadReplyAsync();

        Assert.That(greeting.Text, Does.StartWith("421 4.4.1 "));
        Assert.That(greeting.Text, Does.Contain(closed.ToString()));
        Assert.That(await relay.Client.IsClosedAsync(), Is.True);
        await Wait.ForAsync(relay.Session, "the session to end");
    }

    [Test]
    public async Task An_upstream_greeting_of_554_is_what_the_client_sees()
    {
        const string refusal = "554 5.7.1 mx.upstream.test: no SMTP service for you here";
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Greeting = refusal });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);

        var greeting = await relay.Client.ReadReplyAsync();

        Assert.That(greeting.Text, Is.EqualTo(refusal));
        Assert.That(await relay.Client.IsClosedAsync(), Is.True);
        Assert.That((await upstream.SessionAsync(0)).Commands, Is.Empty, "no EHLO after a refusing greeting");
    }

    [Test]
    public async Task An_upstream_refusal_before_the_greeting_reaches_the_client_with_a_code_a_greeting_may_have()
    {
        // A relay pool answers "451 4.4.1 no relay available" or "454 4.7.0 ... login" here; RFC 5321 allows 421 or 554.
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Greeting = "450 4.3.2 mx.upstream.test busy" });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);

        var greeting = await relay.Client.ReadReplyAsync();

        Assert.That(greeting.Text, Is.EqualTo("421 4.3.2 mx.upstream.test busy"));
        Assert.That(await relay.Client.IsClosedAsync(), Is.True);
    }

    [Test]
    public async Task Upstream_dropping_right_after_the_final_dot_gives_451_never_250()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Drop = UpstreamDrop.AfterFinalDot });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(final.Code, Is.EqualTo(451), final.Text);
        Assert.That(final.Text, Does.StartWith("451 4."));
        Assert.That((await upstream.SessionAsync(0)).Messages, Has.Count.EqualTo(1), "the upstream had the whole message");
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Reply, Does.StartWith("451"));
        Assert.That(relay.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Unknown),
            "unknown outcome (issue 12.8): the upstream may have delivered it, so it is charged as sent; the client still gets 451");
    }

    [Test]
    public async Task Upstream_dropping_during_data_gives_451_consumes_the_rest_and_the_next_mail_reconnects()
    {
        var dropping = new UpstreamScript { Drop = UpstreamDrop.DuringData, DropAfterDataBytes = 1 };
        await using var upstream = new ScriptedUpstream(dropping, new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        Assert.That((await client.CommandAsync("DATA")).Code, Is.EqualTo(354));

        // Lines that would each draw a 500 if they were taken for commands; sent in two parts, the second
        // only once the upstream is gone, so the relay is mid-DATA when it notices.
        var body = new StringBuilder("Subject: x\r\n\r\n");
        for (var i = 0; i < 2000; i++)
        {
            body.Append("XBODY line ").Append(i).Append(" of the message\r\n");
        }

        await client.SendAsync("Subject: x\r\n\r\nfirst part\r\n");
        var first = await upstream.SessionAsync(0);
        await Wait.ForAsync(first.Ended, "the scripted upstream to drop");
        await client.SendAsync(body + ".\r\n");
        var final = await client.ReadReplyAsync();

        Assert.That(final.Code, Is.EqualTo(451), final.Text);
        Assert.That(await first.Ended, Is.EqualTo(UpstreamEnd.DroppedByScript));
        Assert.That(first.Messages, Is.Empty);
        Assert.That((await client.CommandAsync("NOOP")).Text, Is.EqualTo("250 2.0.0 Ok"), "the rest of DATA was consumed, not parsed as commands");

        var again = await client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: again\r\n\r\nsecond try\r\n");

        Assert.That(again.Code, Is.EqualTo(250), again.Text);
        var second = await upstream.SessionAsync(1);
        Assert.That(second.Commands[0], Is.EqualTo($"EHLO {RelayHarness.HeloName}"), "a fresh upstream session");
        Assert.That(second.Messages, Has.Count.EqualTo(1));
        Assert.That(Encoding.UTF8.GetString(RelayHarness.SplitTraceHeader(second.Messages[0]).Body), Is.EqualTo("Subject: again\r\n\r\nsecond try\r\n"));
    }

    [Test]
    public async Task Upstream_dropping_at_mail_gives_a_4xx_and_the_next_mail_reconnects()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Drop = UpstreamDrop.AtMail }, new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var lost = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(lost.Code, Is.EqualTo(451), lost.Text);
        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        Assert.That((await upstream.SessionAsync(1)).Messages, Has.Count.EqualTo(1));
    }
}
