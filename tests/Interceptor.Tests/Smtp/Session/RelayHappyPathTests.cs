using System.Text;
using Interceptor.Core.Events;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class RelayHappyPathTests
{
    [Test]
    public async Task Greeting_is_ours_and_names_no_library_or_version()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);

        var greeting = await relay.Client.ReadReplyAsync();

        Assert.That(greeting.Text, Is.EqualTo($"220 {RelayHarness.HeloName} ESMTP"));
        Assert.That(greeting.Text, Does.Not.Contain("SmtpServer").And.Not.Contain("scripted").And.Not.Match("[0-9]+\\.[0-9]+"));
    }

    [Test]
    public async Task Ehlo_advertises_what_the_upstream_supports_and_never_starttls_chunking_or_auth()
    {
        var script = new UpstreamScript
        {
            Extensions = ["PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "CHUNKING", "AUTH PLAIN LOGIN", "DSN", "ENHANCEDSTATUSCODES"],
        };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.WithLimits(messageSizeBytes: 1_000_000));

        var ehlo = await relay.Client.GreetAsync();

        Assert.That(ehlo.Lines[0], Is.EqualTo($"250-{RelayHarness.HeloName}"));
        Assert.That(ehlo.Keywords, Is.EquivalentTo(new[] { "PIPELINING", "SIZE 1000000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES" }));
    }

    [Test]
    public async Task Ehlo_leaves_out_8bitmime_and_smtputf8_when_the_upstream_lacks_them()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Extensions = ["SIZE 4000", "STARTTLS-NOT-REALLY"] });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);

        var ehlo = await relay.Client.GreetAsync();

        // SIZE is bounded by the upstream's own limit when that is the smaller one.
        Assert.That(ehlo.Keywords, Is.EquivalentTo(new[] { "PIPELINING", "SIZE 4000", "ENHANCEDSTATUSCODES" }));
    }

    [Test]
    public async Task Relays_one_message_with_the_upstreams_own_replies_the_trace_header_and_one_event()
    {
        var script = new UpstreamScript
        {
            MailReply = "250 2.1.0 sender fine here",
            RcptReplies = new Dictionary<string, string>
            {
                ["bob@example.net"] = "250 2.1.5 bob is known to us",
                ["carol@example.net"] = "250 2.1.5 carol too, oddly worded",
            },
            DataReply = "354 go ahead, finish with a dot",
            FinalReply = "250 2.0.0 Ok: queued as 4XyZ1 by the scripted one",
        };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();

        var mail = await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        var bob = await client.CommandAsync("RCPT TO:<bob@example.net>");
        var carol = await client.CommandAsync("RCPT TO:<carol@example.net>");
        var data = await client.CommandAsync("DATA");
        const string body = "From: alice@customer.test\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\n..a stuffed dot stays stuffed\r\n\tcontinued\r\nlast line\r\n";
        await client.SendAsync(body + ".\r\n");
        var final = await client.ReadReplyAsync();

        Assert.That(mail.Text, Is.EqualTo("250 2.1.0 sender fine here"));
        Assert.That(bob.Text, Is.EqualTo("250 2.1.5 bob is known to us"));
        Assert.That(carol.Text, Is.EqualTo("250 2.1.5 carol too, oddly worded"));
        Assert.That(data.Text, Is.EqualTo("354 go ahead, finish with a dot"));
        Assert.That(final.Text, Is.EqualTo("250 2.0.0 Ok: queued as 4XyZ1 by the scripted one"));

        var session = await upstream.SessionAsync(0);
        Assert.That(session.Commands, Is.EqualTo(new[]
        {
            $"EHLO {RelayHarness.HeloName}",
            "MAIL FROM:<alice@customer.test>",
            "RCPT TO:<bob@example.net>",
            "RCPT TO:<carol@example.net>",
            "DATA",
        }));
        Assert.That(session.Messages, Has.Count.EqualTo(1));
        var (header, rest) = RelayHarness.SplitTraceHeader(session.Messages[0]);
        Assert.That(Encoding.UTF8.GetString(rest), Is.EqualTo(body), "the client's bytes, unchanged");

        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        var events = relay.Recorder.Events;
        Assert.That(events, Has.Count.EqualTo(1));
        var recorded = events[0];
        Assert.That(header, Is.EqualTo(RelayHarness.TraceHeader(recorded.Id)));
        Assert.That(recorded.Uid, Is.EqualTo(RelayHarness.Uid));
        Assert.That(recorded.User, Is.EqualTo(RelayHarness.User));
        Assert.That(recorded.Sender, Is.EqualTo("alice@customer.test"));
        Assert.That(recorded.RecipientCount, Is.EqualTo(2));
        Assert.That(recorded.SizeBytes, Is.EqualTo(Encoding.UTF8.GetByteCount(body) - 1), "RFC 1870 size: the transparency dot is not counted");
        Assert.That(recorded.Outcome, Is.EqualTo(TransactionOutcome.Delivered));
        Assert.That(recorded.OriginalDestination, Is.EqualTo(upstream.EndPoint.ToString()));
        Assert.That(recorded.Upstream, Does.StartWith(upstream.EndPoint.ToString()).And.Not.Contain("TLS"));
        Assert.That(recorded.Reply, Is.EqualTo("250 2.0.0 Ok: queued as 4XyZ1 by the scripted one"));
    }

    [Test]
    public async Task The_final_reply_reaches_the_client_before_the_transaction_is_logged_and_counted_and_it_is_recorded_once()
    {
        // Issue 19 (added latency): the log line and the metrics come after the client's reply, not before it.
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        using var recording = new ManualResetEventSlim(false);
        relay.Recorder.OnRecord = _ => recording.Wait(TimeSpan.FromSeconds(20));
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        await client.CommandAsync("DATA");
        await client.SendAsync("Subject: order\r\n\r\nbody\r\n.\r\n");

        // Record is held: the reply must arrive all the same.
        var final = await client.ReadReplyAsync(TimeSpan.FromSeconds(5));
        Assert.That(final.Text, Does.StartWith("250 "));
        Assert.That(relay.Recorder.Events, Is.Empty, "recorded before the reply went out");
        recording.Set();

        await Wait.UntilAsync(() => relay.Recorder.Events.Count == 1, "the transaction recorded after the reply");
        await client.CommandAsync("QUIT");
        await relay.Session;
        Assert.That(relay.Recorder.Events, Has.Count.EqualTo(1), "recorded exactly once");
    }

    [Test]
    public async Task Multi_line_upstream_replies_reach_the_client_line_for_line()
    {
        var script = new UpstreamScript { RcptReply = "250-2.1.5 first line\r\n250-2.1.5 second line\r\n250 2.1.5 third line" };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");

        var rcpt = await relay.Client.CommandAsync("RCPT TO:<b@example.net>");

        Assert.That(rcpt.Text, Is.EqualTo(script.RcptReply));
    }

    [Test]
    public async Task A_pipelined_envelope_gets_one_reply_per_command_in_order()
    {
        var script = new UpstreamScript
        {
            RcptReplies = new Dictionary<string, string> { ["gone@example.net"] = "550 5.1.1 gone is gone" },
        };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();

        await client.SendAsync("MAIL FROM:<alice@customer.test>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<gone@example.net>\r\nDATA\r\n");
        var replies = new[] { await client.ReadReplyAsync(), await client.ReadReplyAsync(), await client.ReadReplyAsync(), await client.ReadReplyAsync() };
        await client.SendAsync("Subject: p\r\n\r\npipelined\r\n.\r\n");
        var final = await client.ReadReplyAsync();

        Assert.That(replies.Select(r => r.Text), Is.EqualTo(new[]
        {
            script.MailReply, script.RcptReply, "550 5.1.1 gone is gone", script.DataReply,
        }));
        Assert.That(final.Text, Is.EqualTo(script.FinalReply));
    }

    [Test]
    public async Task Several_transactions_on_one_connection_with_rset_noop_null_sender_and_quit()
    {
        var script = new UpstreamScript { RsetReply = "250 2.0.0 upstream flushed its state" };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();

        var first = await client.SendMessageAsync("one@customer.test", ["x@example.net"], "Subject: one\r\n\r\nfirst\r\n");
        var idleRset = await client.CommandAsync("RSET");
        await client.CommandAsync("MAIL FROM:<two@customer.test>");
        await client.CommandAsync("RCPT TO:<y@example.net>");
        var rset = await client.CommandAsync("RSET");
        var bounce = await client.SendMessageAsync("", ["z@example.net", "w@example.net"], "Subject: bounce\r\n\r\nthird\r\n");
        var noop = await client.CommandAsync("NOOP");
        var quit = await client.CommandAsync("QUIT");

        Assert.That(first.Code, Is.EqualTo(250));
        Assert.That(idleRset.Text, Is.EqualTo("250 2.0.0 upstream flushed its state"), "RSET reaches the upstream even between transactions");
        Assert.That(rset.Text, Is.EqualTo("250 2.0.0 upstream flushed its state"), "RSET inside a transaction is relayed");
        Assert.That(bounce.Code, Is.EqualTo(250));
        Assert.That(noop.Code, Is.EqualTo(250));
        Assert.That(quit.Code, Is.EqualTo(221));
        Assert.That(await client.IsClosedAsync(), Is.True, "the connection closes after QUIT");
        await Wait.ForAsync(relay.Session, "the session to end");

        var session = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(session.Ended, "the upstream session to end"), Is.EqualTo(UpstreamEnd.Quit));
        Assert.That(upstream.Sessions, Has.Count.EqualTo(1), "one upstream session for the whole connection");
        Assert.That(session.Commands, Is.EqualTo(new[]
        {
            $"EHLO {RelayHarness.HeloName}",
            "MAIL FROM:<one@customer.test>", "RCPT TO:<x@example.net>", "DATA", "RSET",
            "MAIL FROM:<two@customer.test>", "RCPT TO:<y@example.net>", "RSET",
            "MAIL FROM:<>", "RCPT TO:<z@example.net>", "RCPT TO:<w@example.net>", "DATA",
            "QUIT",
        }));
        Assert.That(session.Messages, Has.Count.EqualTo(2));

        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 3, "the three transactions recorded (right after the client's final reply)");
        var events = relay.Recorder.Events;
        Assert.That(events.Select(e => (e.Sender, e.RecipientCount)), Is.EqualTo(new[]
        {
            ("one@customer.test", 1), ("two@customer.test", 1), ("", 2),
        }));
        Assert.That(events[0].Reply, Does.StartWith("250"));
        Assert.That(events[1].Reply, Does.Contain("RSET"));
        Assert.That(events.Select(e => e.Outcome), Is.EqualTo(new[] { TransactionOutcome.Delivered, TransactionOutcome.Refused, TransactionOutcome.Delivered }));
        Assert.That(events[2].Reply, Does.StartWith("250"));
        Assert.That(events.Select(e => e.Id).Distinct().Count(), Is.EqualTo(3), "each transaction has its own id");
    }

    [Test]
    public async Task A_refused_recipient_gets_the_upstreams_text_and_the_message_goes_to_the_other()
    {
        var script = new UpstreamScript
        {
            RcptReplies = new Dictionary<string, string> { ["nobody@example.net"] = "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in virtual mailbox table" },
        };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var client = relay.Client;
        await client.GreetAsync();

        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        var refused = await client.CommandAsync("RCPT TO:<nobody@example.net>");
        var accepted = await client.CommandAsync("RCPT TO:<bob@example.net>");
        var data = await client.CommandAsync("DATA");
        await client.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        var final = await client.ReadReplyAsync();

        Assert.That(refused.Text, Is.EqualTo(script.RcptReplies["nobody@example.net"]));
        Assert.That(accepted.Code, Is.EqualTo(250));
        Assert.That(data.Code, Is.EqualTo(354));
        Assert.That(final.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Messages, Has.Count.EqualTo(1));
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().RecipientCount, Is.EqualTo(1));
    }

    [Test]
    public async Task Data_without_an_accepted_recipient_is_refused_locally_and_never_reaches_the_upstream()
    {
        var script = new UpstreamScript { RcptReply = "550 5.1.1 unknown user" };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await relay.Client.CommandAsync("RCPT TO:<nobody@example.net>");

        var data = await relay.Client.CommandAsync("DATA");

        Assert.That(data.Code, Is.EqualTo(554));
        Assert.That((await upstream.SessionAsync(0)).Commands, Does.Not.Contain("DATA"));
    }
    [Test]
    public async Task The_session_ends_without_waiting_for_the_upstreams_reply_to_quit()
    {
        // Like Postfix's smtp_skip_quit_response: the outcome is known, the 221 is not worth a round trip.
        var script = new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["QUIT"] = TimeSpan.FromSeconds(30) } };
        await using var upstream = new ScriptedUpstream(script);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        Assert.That((await relay.Client.SendMessageAsync("alice@example.com", ["bob@example.net"], "Subject: hi\r\n\r\nhello\r\n")).Code, Is.EqualTo(250));

        var bye = await relay.Client.CommandAsync("QUIT");

        Assert.That(bye.Code, Is.EqualTo(221));
        await Wait.ForAsync(relay.Session, "the session to end although the upstream has not answered QUIT", TimeSpan.FromSeconds(2));
        var record = await upstream.SessionAsync(0);
        await Wait.UntilAsync(() => record.Commands.Contains("QUIT"), "the upstream to receive QUIT");
    }
}
