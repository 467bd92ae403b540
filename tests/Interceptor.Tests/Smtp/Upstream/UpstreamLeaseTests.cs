using System.Net;
using System.Text;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;
using static Interceptor.Tests.Smtp.Upstream.UpstreamConnectionDialogueTests;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>
/// <see cref="UpstreamLease"/> over today's source (original destination + <see cref="UpstreamConnectionCache"/>)
/// against recorded dialogues: reuse, the transparent retry of a dead reused session, and what is given back how.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class UpstreamLeaseTests
{
    private static readonly ConnectionOrigin Origin = new(1001, "alice", new IPEndPoint(IPAddress.Loopback, 40000), Mx);

    private static readonly UpstreamSettings Reusing = Settings with
    {
        Reuse = new UpstreamReuse(true, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), 100, 4),
    };

    private static EnvelopeCommand Mail(string argument)
    {
        var (mail, refusal) = EnvelopeCommand.Parse(argument, "FROM:", allowNullPath: true);
        Assert.That(refusal, Is.Null);
        return mail!;
    }

    /// <summary>The upstream's side of one delivered message from <paramref name="from"/>.</summary>
    private static ScriptedDialogue Delivers(ScriptedDialogue dialogue, string from) => dialogue
        .Client($"MAIL FROM:<{from}>").Server("250 2.1.0 Ok")
        .Client("RCPT TO:<b@example.net>").Server("250 2.1.5 Ok")
        .Client("DATA").Server("354 go ahead")
        .ClientBytes("Subject: s\r\n\r\nhi\r\n.\r\n").Server("250 2.0.0 Ok: queued");

    /// <summary>One message through a fresh lease, which is then given back.</summary>
    private static async Task DeliverAsync(UpstreamConnectionCache source, string from)
    {
        await using var lease = source.Lease(Origin);
        var mail = await lease.MailAsync(Mail($"FROM:<{from}>"), CancellationToken.None);
        Assert.That(mail.Reply.Code, Is.EqualTo(250), mail.Reply.ToString());
        await lease.RcptAsync("<b@example.net>", CancellationToken.None);
        await lease.DataAsync(CancellationToken.None);
        var verdict = await lease.FinishDataAsync(Encoding.ASCII.GetBytes("Subject: s\r\n\r\nhi\r\n.\r\n"), CancellationToken.None);
        Assert.That(verdict.Code, Is.EqualTo(250), verdict.ToString());
    }

    [Test]
    public async Task The_next_lease_gets_the_kept_session_without_a_new_greeting()
    {
        var connector = new ScriptedConnector(Delivers(Delivers(ScriptedDialogue.Greeted(Helo), "first@customer.test"), "second@customer.test").Client("QUIT"));
        var cache = new UpstreamConnectionCache(Reusing, connector);

        await DeliverAsync(cache, "first@customer.test");
        await DeliverAsync(cache, "second@customer.test");
        await cache.DisposeAsync();

        Assert.That(cache.Reused, Is.EqualTo(1));
        Assert.That(connector.Connections, Has.Count.EqualTo(1));
        connector.AssertPlayedOut();
    }

    [TestCase("421 4.4.2 mx.test: idle for too long", "421 4.4.2 mx.test: idle for too long", TestName = "A_reused_session_that_says_421_at_its_first_MAIL_is_replaced_once_and_the_caller_sees_only_the_new_reply")]
    [TestCase(null, "connection closed by the upstream", TestName = "A_reused_session_found_closed_at_its_first_MAIL_is_replaced_once_and_the_caller_sees_only_the_new_reply")]
    public async Task Dead_reused_session(string? deadReply, string reason)
    {
        var first = Delivers(ScriptedDialogue.Greeted(Helo), "first@customer.test").Client("MAIL FROM:<second@customer.test>");
        first = deadReply is null ? first.Closes() : first.Server(deadReply).Closes();
        var connector = new ScriptedConnector(first, ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<second@customer.test>").Server("250 2.1.0 Ok").Client("RSET").Server("250 Ok").Client("QUIT"));
        var cache = new UpstreamConnectionCache(Reusing, connector);
        await DeliverAsync(cache, "first@customer.test");

        UpstreamMailResult result;
        await using (var lease = cache.Lease(Origin))
        {
            result = await lease.MailAsync(Mail("FROM:<second@customer.test>"), CancellationToken.None);
            Assert.That(lease.State, Is.EqualTo(UpstreamState.InTransaction));
        }

        await cache.DisposeAsync();
        Assert.That(result.Reply.ToString(), Is.EqualTo("250 2.1.0 Ok"));
        Assert.That(result.Answer, Is.EqualTo(MailAnswer.Upstream));
        Assert.That(result.RetriedAfter, Is.EqualTo(reason));
        Assert.That(connector.Connections, Has.Count.EqualTo(2));
        Assert.That(connector.Connections[0].Replay.Disposed, Is.True, "the dead session is closed");
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task The_retry_happens_once_and_goes_to_a_new_connection_not_another_kept_one()
    {
        var connector = new ScriptedConnector(
            Delivers(ScriptedDialogue.Greeted(Helo), "first@customer.test").Client("MAIL FROM:<second@customer.test>").Server("421 4.4.2 bye").Closes(),
            ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<second@customer.test>").Server("421 4.3.2 overloaded").Closes());
        await using var cache = new UpstreamConnectionCache(Reusing, connector);
        await DeliverAsync(cache, "first@customer.test");

        await using var lease = cache.Lease(Origin);
        var result = await lease.MailAsync(Mail("FROM:<second@customer.test>"), CancellationToken.None);

        Assert.That(result.Reply.ToString(), Is.EqualTo("421 4.3.2 overloaded"), "the new connection's own 421 is the answer");
        Assert.That(result.RetriedAfter, Is.EqualTo("421 4.4.2 bye"));
        Assert.That(lease.IsUsable, Is.False);
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_new_session_that_says_421_at_mail_is_not_retried()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<a@customer.test>").Server("421 4.7.0 too many").Closes());
        await using var cache = new UpstreamConnectionCache(Reusing, connector);
        await using var lease = cache.Lease(Origin);

        var result = await lease.MailAsync(Mail("FROM:<a@customer.test>"), CancellationToken.None);

        Assert.That(result.Reply.Code, Is.EqualTo(421));
        Assert.That(result.RetriedAfter, Is.Null);
        Assert.That(connector.Connections, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_reused_session_that_refuses_mail_as_a_live_server_does_is_not_retried()
    {
        var connector = new ScriptedConnector(Delivers(ScriptedDialogue.Greeted(Helo), "first@customer.test")
            .Client("MAIL FROM:<spam@customer.test>").Server("550 5.7.1 sender refused").Client("QUIT"));
        var cache = new UpstreamConnectionCache(Reusing, connector);
        await DeliverAsync(cache, "first@customer.test");

        UpstreamMailResult result;
        await using (var lease = cache.Lease(Origin))
        {
            result = await lease.MailAsync(Mail("FROM:<spam@customer.test>"), CancellationToken.None);
        }

        Assert.That(cache.IdleCount, Is.EqualTo(1), "kept again, without RSET: a refused MAIL started no transaction");
        await cache.DisposeAsync();
        Assert.That(result.Reply.Code, Is.EqualTo(550));
        Assert.That(result.RetriedAfter, Is.Null);
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_session_that_died_mid_transaction_is_not_kept_and_the_next_lease_opens_a_new_one()
    {
        var connector = new ScriptedConnector(
            ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<a@customer.test>").Server("250 Ok").Client("RCPT TO:<b@example.net>").Closes(),
            ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<a@customer.test>").Server("250 Ok").Client("RSET").Server("250 Ok").Client("QUIT"));
        var cache = new UpstreamConnectionCache(Reusing, connector);

        await using (var lease = cache.Lease(Origin))
        {
            await lease.MailAsync(Mail("FROM:<a@customer.test>"), CancellationToken.None);
            Assert.ThrowsAsync<UpstreamConnectionLostException>(() => lease.RcptAsync("<b@example.net>", CancellationToken.None));
        }

        Assert.That(cache.IdleCount, Is.EqualTo(0));
        await using (var next = cache.Lease(Origin))
        {
            var result = await next.MailAsync(Mail("FROM:<a@customer.test>"), CancellationToken.None);
            Assert.That(result.RetriedAfter, Is.Null);
        }

        await cache.DisposeAsync();
        Assert.That(cache.Reused, Is.EqualTo(0));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_lease_given_back_inside_data_drops_the_connection_with_neither_quit_nor_rset()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<a@customer.test>").Server("250 Ok").Client("RCPT TO:<b@example.net>").Server("250 Ok")
            .Client("DATA").Server("354 go").ClientBytes("Subject: half\r\n").FallsSilent());
        await using var cache = new UpstreamConnectionCache(Reusing, connector);

        await using (var lease = cache.Lease(Origin))
        {
            await lease.MailAsync(Mail("FROM:<a@customer.test>"), CancellationToken.None);
            await lease.RcptAsync("<b@example.net>", CancellationToken.None);
            await lease.DataAsync(CancellationToken.None);
            await lease.WriteDataAsync(Encoding.ASCII.GetBytes("Subject: half\r\n"), CancellationToken.None);
            Assert.That(lease.State, Is.EqualTo(UpstreamState.InData));
        }

        Assert.That(connector.Connections.Single().Aborted, Is.True);
        Assert.That(connector.Connections.Single().Replay.Unanswered, Is.Empty, "neither QUIT nor RSET inside the message");
        Assert.That(cache.IdleCount, Is.EqualTo(0));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task Without_reuse_a_lease_ends_its_session_with_quit()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo).Client("QUIT"));
        await using var cache = new UpstreamConnectionCache(Settings, connector);

        await using (var lease = cache.Lease(Origin))
        {
            Assert.That(await lease.ConnectAsync(CancellationToken.None), Is.Null);
            Assert.That(lease.Name, Is.EqualTo("192.0.2.25:25"));
        }

        Assert.That(cache.IdleCount, Is.EqualTo(0));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task Every_fault_while_opening_is_unavailable_with_its_reason_and_a_refusal_is_a_value()
    {
        await using var refused = new UpstreamConnectionCache(Settings, new ScriptedConnector());
        await using var hungUp = new UpstreamConnectionCache(Settings, new ScriptedConnector(new ScriptedDialogue().Closes()));
        var busyConnector = new ScriptedConnector(new ScriptedDialogue().Server("554 5.7.1 go away"));
        await using var busy = new UpstreamConnectionCache(Settings, busyConnector);

        var connect = Assert.ThrowsAsync<UpstreamUnavailableException>(() => refused.Lease(Origin).ConnectAsync(CancellationToken.None));
        var greeting = Assert.ThrowsAsync<UpstreamUnavailableException>(() => hungUp.Lease(Origin).ConnectAsync(CancellationToken.None));
        var result = await busy.Lease(Origin).MailAsync(Mail("FROM:<a@customer.test>"), CancellationToken.None);

        Assert.That(connect!.Message, Is.EqualTo("connect to 192.0.2.25:25 failed: connection refused"));
        Assert.That(greeting!.Message, Is.EqualTo("connection closed by the upstream"));
        Assert.That(result.Answer, Is.EqualTo(MailAnswer.SessionRefused));
        Assert.That(result.Reply.ToString(), Is.EqualTo("554 5.7.1 go away"));
        busyConnector.AssertPlayedOut();
    }

    [Test]
    public async Task Mail_parameters_follow_the_upstreams_capabilities_and_one_it_cannot_honour_is_refused_before_sending()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "8BITMIME")
            .Client("MAIL FROM:<a@customer.test> BODY=8BITMIME").Server("250 Ok").Client("RSET").Server("250 Ok").Client("QUIT"));
        await using var cache = new UpstreamConnectionCache(Settings, connector);
        await using var lease = cache.Lease(Origin);

        var utf8 = await lease.MailAsync(Mail("FROM:<a@customer.test> SMTPUTF8"), CancellationToken.None);
        var eightBit = await lease.MailAsync(Mail("FROM:<a@customer.test> SIZE=100 BODY=8BITMIME"), CancellationToken.None);
        await lease.RsetAsync(CancellationToken.None);
        await lease.DisposeAsync();

        Assert.That(utf8.Answer, Is.EqualTo(MailAnswer.Unsupported));
        Assert.That(utf8.Reply.ToString(), Is.EqualTo("553 5.6.7 upstream 192.0.2.25:25 does not support SMTPUTF8; use an ASCII address"));
        Assert.That(eightBit.Answer, Is.EqualTo(MailAnswer.Upstream), "SIZE is dropped for an upstream that does not advertise it");
        connector.AssertPlayedOut();
    }
}
