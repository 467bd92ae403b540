using System.Diagnostics;
using System.Text;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Slow or silent peers on either side, and a client that leaves mid-DATA.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class TimeoutTests
{
    [Test]
    public async Task An_upstream_that_never_greets_gives_421_within_the_reply_timeout()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { NeverGreet = true });
        var clock = Stopwatch.StartNew();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.ShortTimeouts);

        var greeting = await relay.Client.ReadReplyAsync();
        var elapsed = clock.Elapsed;

        var timeout = RelayHarness.ShortTimeouts.Relay.ReplyTimeout;
        Assert.That(greeting.Text, Does.StartWith("421 4.4.1 "));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(timeout - TimeSpan.FromMilliseconds(100)), "it did wait for the greeting");
        Assert.That(elapsed, Is.LessThan(timeout + TimeSpan.FromSeconds(1.5)));
        Assert.That(await relay.Client.IsClosedAsync(), Is.True);
        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the relay to hang up"), Is.Not.EqualTo(UpstreamEnd.Cancelled));
    }

    [Test]
    public async Task An_idle_client_gets_421_442_after_the_idle_timeout()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.ShortTimeouts);
        await relay.Client.GreetAsync();
        var clock = Stopwatch.StartNew();

        var reply = await relay.Client.ReadReplyAsync(TimeSpan.FromSeconds(5));
        var elapsed = clock.Elapsed;

        var idle = RelayHarness.ShortTimeouts.Smtp.IdleTimeout;
        Assert.That(reply.Text, Does.StartWith("421 4.4.2 "));
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(idle - TimeSpan.FromMilliseconds(100)));
        Assert.That(elapsed, Is.LessThan(idle + TimeSpan.FromSeconds(1.5)));
        Assert.That(await relay.Client.IsClosedAsync(), Is.True);
        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the upstream session to end"), Is.EqualTo(UpstreamEnd.Quit));
    }

    [Test]
    
    public async Task A_client_idle_in_the_middle_of_data_gets_421_and_the_upstream_is_dropped_not_sent_quit()
    {
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { IdleTimeout = TimeSpan.FromSeconds(1) } };
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        await client.CommandAsync("DATA");

        await client.SendAsync("Subject: x\r\n\r\nhalf a message\r\n");
        var reply = await client.ReadReplyAsync();

        Assert.That(reply.Text, Does.StartWith("421 4.4.2 "));
        var session = await upstream.SessionAsync(0);
        var end = await Wait.ForAsync(session.Ended, "the upstream session to end");
        Assert.That(session.Messages, Is.Empty, "never a final dot");
        Assert.That(Encoding.UTF8.GetString(session.PartialData), Does.Not.Contain("QUIT"), "QUIT was written into the open DATA section");
        Assert.That(end, Is.EqualTo(UpstreamEnd.Reset), "an unfinished DATA is aborted, as when the client disconnects");
    }

    [Test]
    public async Task A_client_that_disconnects_in_the_middle_of_data_gets_the_upstream_dropped_without_a_final_dot()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        await client.CommandAsync("DATA");
        await client.SendAsync("Subject: x\r\n\r\nhalf a message\r\n.");

        await client.DisposeAsync();

        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the relay to drop the upstream"), Is.EqualTo(UpstreamEnd.Reset));
        Assert.That(session.Messages, Is.Empty);
        await Wait.ForAsync(relay.Session, "the session to end");
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Reply, Does.Not.StartWith("2"));
    }

    [Test]
    public async Task An_upstream_too_slow_after_the_final_dot_gives_451_and_is_dropped()
    {
        var script = new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["."] = TimeSpan.FromSeconds(3) } };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.ShortTimeouts);
        await relay.Client.GreetAsync();
        var clock = Stopwatch.StartNew();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(final.Text, Does.StartWith("451 4."), "delivery not confirmed: never 250");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(RelayHarness.ShortTimeouts.Relay.DataReplyTimeout.TotalSeconds + 1.5)));
        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the relay to drop the upstream"), Is.EqualTo(UpstreamEnd.Reset));
        Assert.That((await relay.Client.CommandAsync("NOOP")).Code, Is.EqualTo(250));
    }

    [Test]
    
    public async Task After_an_upstream_reply_timeout_a_later_command_never_gets_the_late_reply_to_an_earlier_one()
    {
        const string lateReply = "250 2.1.5 this answers RCPT slow@example.net";
        const string ownReply = "550 5.1.1 this answers RCPT carol@example.net";
        var script = new UpstreamScript
        {
            RcptReplies = new Dictionary<string, string> { ["slow@example.net"] = lateReply, ["carol@example.net"] = ownReply },
            Delays = new Dictionary<string, TimeSpan> { ["RCPT slow@example.net"] = TimeSpan.FromSeconds(3) },
        };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.ShortTimeouts);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        Assert.That((await client.CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));

        var slow = await client.CommandAsync("RCPT TO:<slow@example.net>");
        var carol = await client.CommandAsync("RCPT TO:<carol@example.net>");

        Assert.That(slow.Code, Is.EqualTo(451), slow.Text);
        Assert.That(carol.Text, Is.Not.EqualTo(lateReply), "lock-step broken: RCPT carol got the reply meant for RCPT slow");
        Assert.That(carol.Code == 451 || carol.Text == ownReply, $"RCPT carol got {carol.Text}");
    }
}
