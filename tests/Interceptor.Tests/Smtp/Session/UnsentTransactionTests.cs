using Interceptor.Core.Events;
using Interceptor.Core.Options;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// Issue 12.3 and 12.8 at the session: transactions that end before DATA are marked for tallying and count as errors,
/// DATA abandoned by the client counts as unsent;
/// the wait for the final dot's verdict outlives the session timeout.
/// </summary>
public class UnsentTransactionTests
{
    [Test]
    public async Task A_session_ended_while_the_upstream_answers_mail_still_finishes_the_transaction()
    {
        // Before, the ticket's quota reservation (and a trial's turn at Suspension.LocalFailureLimit) stayed taken: the
        // transaction had not reached the session yet, so nothing finished it.
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["MAIL"] = TimeSpan.FromSeconds(5) } });
        var session = MemorySession.Start(upstream.EndPoint);
        try
        {
            await session.GreetAsync();
            await session.SendAsync("MAIL FROM:<alice@customer.test>\r\n");
            await Wait.UntilAsync(() => upstream.Sessions.Any(s => s.Commands.Any(c => c.StartsWith("MAIL", StringComparison.Ordinal))), "MAIL upstream");
        }
        finally
        {
            await session.DisposeAsync();
        }

        await Wait.UntilAsync(() => session.Recorder.Events.Count >= 1, "the transaction finished");
        Assert.That(session.Recorder.Events.Single().Reply, Is.EqualTo("aborted: the session ended at MAIL"));
    }

    [Test]
    public async Task Mail_rset_loops_are_marked_unsent_and_end_at_the_hard_error_limit()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { SoftErrorLimit = 100, HardErrorLimit = 5 } };
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        await relay.Client.GreetAsync();

        var replies = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            replies.Add((await relay.Client.CommandAsync("MAIL FROM:<x@y.test>")).Text);
            if (!replies[^1].StartsWith("250", StringComparison.Ordinal))
            {
                break;
            }

            replies.Add((await relay.Client.CommandAsync("RSET")).Text);
        }

        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 5, "five recorded transactions");
        Assert.Multiple(() =>
        {
            Assert.That(replies[^1], Does.StartWith("421 4.7.0 Error: too many errors (5)"), string.Join("\n", replies));
            Assert.That(replies.Count(r => r.StartsWith("250", StringComparison.Ordinal)), Is.EqualTo(10), "five MAIL+RSET, then cut off");
            Assert.That(relay.Recorder.Events.Select(e => e.Unsent), Has.All.EqualTo(UnsentKind.Reset));
        });
    }

    [TestCase("close")]
    [TestCase("reset")]
    [TestCase("silence")]
    public async Task Data_abandoned_by_the_client_counts_as_unsent_however_it_hangs_up(string how)
    {
        // MAIL, RCPT, DATA and a hang-up in a loop probes which recipients an MX accepts: each must count toward
        // Suspension.UnsentLimit. Before, only the clean close did; a reset or the idle timeout escaped as an exception.
        await using var upstream = new ScriptedUpstream();
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { IdleTimeout = TimeSpan.FromSeconds(1) } };
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        Assert.That((await client.CommandAsync("DATA")).Code, Is.EqualTo(354));
        await client.SendAsync("Subject: probe\r\n\r\nhalf a message\r\n");

        switch (how)
        {
            case "close":
                await client.DisposeAsync();
                break;
            case "reset":
                client.Reset();
                break;
            default:
                Assert.That((await client.ReadReplyAsync(TimeSpan.FromSeconds(5))).Text, Does.StartWith("421 4.4.2 "));
                break;
        }

        await Wait.ForAsync(relay.Session, "the session to end");
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the recorded transaction");
        Assert.Multiple(() =>
        {
            Assert.That(relay.Recorder.Events.Single().Unsent, Is.EqualTo(UnsentKind.AbandonedInData));
            Assert.That(relay.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Refused));
        });
    }

    [Test]
    public async Task A_final_dot_answered_after_the_session_timeout_is_passed_on_and_recorded_as_delivered()
    {
        var script = new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["."] = TimeSpan.FromSeconds(2.5) } };
        await using var upstream = new ScriptedUpstream(script);
        var options = RelayHarness.Options with
        {
            Relay = RelayHarness.Options.Relay with { DataReplyTimeout = TimeSpan.FromSeconds(10) },
            Smtp = RelayHarness.Options.Smtp with { SessionTimeout = TimeSpan.FromSeconds(2) },
        };
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the recorded transaction");
        Assert.Multiple(() =>
        {
            Assert.That(final.Code, Is.EqualTo(250), final.Text);
            Assert.That(relay.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Delivered));
            Assert.That(relay.Recorder.Events.Single().Unsent, Is.Null);
        });
    }
}
