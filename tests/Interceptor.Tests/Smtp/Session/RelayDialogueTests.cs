using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// The inbound session with its policy port and a lease whose upstream is a recorded dialogue (no upstream socket):
/// what the client sees, what the upstream is sent, and what is recorded. The session asks its <see cref="IMailPolicy"/>
/// and nothing else for limits and admission.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class RelayDialogueTests
{
    private static readonly UpstreamSettings NoReuse = UpstreamSettings.From(RelayHarness.Options.Relay) with { Reuse = UpstreamReuse.Off };

    private static readonly InterceptorOptions Reusing = RelayHarness.Options with
    {
        Relay = RelayHarness.Options.Relay with { ReuseConnections = true, ReuseIdleTime = TimeSpan.FromSeconds(30) },
    };

    private static ScriptedDialogue Delivers(ScriptedDialogue dialogue, string from, string queuedAs) => dialogue
        .Client($"MAIL FROM:<{from}>").Server("250 2.1.0 Ok")
        .Client("RCPT TO:<bob@example.net>").Server("250 2.1.5 Ok")
        .Client("DATA").Server("354 End data with <CR><LF>.<CR><LF>")
        .ClientMessage().Server($"250 2.0.0 Ok: queued as {queuedAs}");

    [Test]
    public async Task A_client_whose_kept_upstream_session_died_at_mail_sees_only_the_new_sessions_replies_and_one_transaction_is_recorded()
    {
        var connector = new ScriptedConnector(
            Delivers(ScriptedDialogue.Greeted(RelayHarness.HeloName, "PIPELINING", "8BITMIME"), "first@customer.test", "A")
                .Client("MAIL FROM:<second@customer.test>").Server("421 4.4.2 mx.test: idle timeout").Closes(),
            Delivers(ScriptedDialogue.Greeted(RelayHarness.HeloName, "PIPELINING", "8BITMIME"), "second@customer.test", "B").Client("QUIT"));
        var cache = new UpstreamConnectionCache(UpstreamSettings.From(Reusing.Relay), connector);
        var finals = new List<SmtpTestReply>();
        RelayHarness? second = null;
        foreach (var from in new[] { "first@customer.test", "second@customer.test" })
        {
            await using var relay = await RelayHarness.StartAsync(ScriptedConnector.Mx, Reusing, cache);
            await relay.Client.GreetAsync();
            finals.Add(await relay.Client.SendMessageAsync(from, ["bob@example.net"], "Subject: s\r\n\r\nhi\r\n"));
            await relay.Client.CommandAsync("QUIT");
            await Wait.ForAsync(relay.Session, "the session to end");
            second = relay;
        }

        await cache.DisposeAsync();
        Assert.That(finals.Select(f => f.Text), Is.EqualTo(new[] { "250 2.0.0 Ok: queued as A", "250 2.0.0 Ok: queued as B" }));
        await Wait.UntilAsync(() => second!.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        var recorded = second!.Recorder.Events.Single();
        Assert.That(recorded.Outcome, Is.EqualTo(TransactionOutcome.Delivered));
        Assert.That(recorded.Upstream, Is.EqualTo("192.0.2.25:25"));
        Assert.That(second.Policy.Store.Transactions.Select(t => (t.Id, t.Outcome)), Is.EqualTo(new[] { (recorded.Id, TransactionOutcome.Delivered) }));
        Assert.That(second.Policy.Store.Tallies, Is.Empty, "the MAIL on the dead session is no transaction of the client's");
        Assert.That(connector.Connections[1].Replay.Messages.Single(), Does.StartWith(RelayHarness.TraceHeader(recorded.Id)).And.EndWith("Subject: s\r\n\r\nhi\r\n.\r\n"));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_session_that_ends_inside_data_drops_the_upstream_without_quit_and_the_policy_settles_the_message()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(RelayHarness.HeloName)
            .Client("MAIL FROM:<a@customer.test>").Server("250 Ok")
            .Client("RCPT TO:<bob@example.net>").Server("250 Ok")
            .Client("DATA").Server("354 go")
            .FallsSilent());
        await using var cache = new UpstreamConnectionCache(UpstreamSettings.From(Reusing.Relay), connector);
        await using var relay = await RelayHarness.StartAsync(ScriptedConnector.Mx, Reusing, cache);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");
        await relay.Client.CommandAsync("RCPT TO:<bob@example.net>");
        await relay.Client.CommandAsync("DATA");
        await relay.Client.SendAsync("Subject: half a message\r\n");

        await relay.Client.DisposeAsync();
        await Wait.ForAsync(relay.Session, "the session to end");

        var upstream = connector.Connections.Single();
        Assert.That(upstream.Aborted, Is.True, "dropped, so the upstream discards the partial message");
        Assert.That(upstream.Replay.Unanswered, Does.StartWith("X-Interceptor-Origin: uid=1001 user=alice;").And.EndWith("\r\nSubject: half a message\r\n"), "no QUIT, no RSET after the partial message");
        Assert.That(cache.IdleCount, Is.EqualTo(0));
        Assert.That(relay.Policy.Store.TransactionWrites.Select(t => t.Outcome), Is.EqualTo(new[] { TransactionOutcome.Pending, TransactionOutcome.Refused }));
        Assert.That(relay.Policy.Policy.Ledger.Usage(RelayHarness.Uid), Is.EqualTo((0, 0, 0, 0)), "nothing relayed, nothing charged");
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task The_session_takes_its_message_bounds_from_the_policy_not_from_the_options()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(RelayHarness.HeloName, "SIZE 5000000")
            .Client("MAIL FROM:<a@customer.test>").Server("250 Ok")
            .Client("RCPT TO:<one@example.net>").Server("250 Ok")
            .Client("QUIT"));
        await using var cache = new UpstreamConnectionCache(NoReuse, connector);
        var policy = new UnlimitedMailPolicy(new QuotaLimits { MessageSizeBytes = 1000, RecipientsPerMessage = 1 });
        await using var relay = await RelayHarness.StartAsync(ScriptedConnector.Mx, RelayHarness.Options, cache, policy);

        var ehlo = await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");
        await relay.Client.CommandAsync("RCPT TO:<one@example.net>");
        var second = await relay.Client.CommandAsync("RCPT TO:<two@example.net>");
        await relay.Client.CommandAsync("QUIT");
        await Wait.ForAsync(relay.Session, "the session to end");

        Assert.That(ehlo.Keywords, Does.Contain("SIZE 1000"));
        Assert.That(second.Text, Is.EqualTo("452 4.5.3 too many recipients for user alice (1/1 per message); send the rest in another message"));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_user_the_daemons_policy_suspended_is_refused_at_mail_and_nothing_reaches_the_upstream()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(RelayHarness.HeloName).Client("QUIT"));
        await using var cache = new UpstreamConnectionCache(NoReuse, connector);
        var fixture = new PolicyFixture();
        await fixture.Suspensions.SuspendAsync(new Suspension(RelayHarness.Uid, RelayHarness.User, "spam run", DateTimeOffset.UtcNow, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);
        await using var relay = await RelayHarness.StartAsync(ScriptedConnector.Mx, RelayHarness.Options, cache, fixture.Policy);

        await relay.Client.GreetAsync();
        var mail = await relay.Client.CommandAsync("MAIL FROM:<a@customer.test>");
        await relay.Client.CommandAsync("QUIT");
        await Wait.ForAsync(relay.Session, "the session to end");

        Assert.That(mail.Text, Does.StartWith("550 5.7.1 user alice is suspended from sending mail: spam run"));
        Assert.That(fixture.Kernel.Calls, Is.EqualTo(new[] { "suspend 1001", "alert 1001 Admin" }));
        connector.AssertPlayedOut();
    }
}
