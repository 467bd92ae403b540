using Interceptor.Core.Pool;
using Interceptor.Smtp.Pool;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;
using static Interceptor.Tests.Smtp.Pool.PoolTestParts;

namespace Interceptor.Tests.Smtp.Pool;

/// <summary>
/// <see cref="PoolUpstreamSource"/> against recorded dialogues: failover before the client is answered, the 451 when no
/// relay is usable, the relay named on the session, and every reply handed to the pool's burn detection.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class PoolUpstreamSourceTests
{
    private static (PoolUpstreamSource Source, RoutingConnector Connector, RecordingPoolObserver Observer, RelayPool Pool) Build(
        ScriptedConnector scripted, int threshold = 5, params System.Net.IPEndPoint[] refused)
    {
        var connector = new RoutingConnector(scripted, refused);
        var observer = new RecordingPoolObserver();
        var pool = NewPool(threshold);
        var cache = new UpstreamConnectionCache(Settings, connector);
        return (new PoolUpstreamSource(Relays, pool, observer, RelayCredentials.Empty, cache, connector), connector, observer, pool);
    }

    [Test]
    public async Task A_refused_primary_is_marked_down_and_the_standby_takes_the_session_with_its_own_ehlo_name()
    {
        var (source, connector, observer, pool) = Build(new ScriptedConnector(ScriptedDialogue.Greeted("out.relay.test").Client("QUIT")), refused: Relay1);

        await using (var lease = source.Lease(Origin("alice")))
        {
            Assert.That(await lease.ConnectAsync(CancellationToken.None), Is.Null);
            Assert.That(lease.Relay, Is.EqualTo("relay2"));
            Assert.That(lease.Name, Is.EqualTo("relay2"));
        }

        Assert.That(connector.Endpoints, Is.EqualTo(new[] { Relay1, Relay2 }));
        Assert.That(observer.Calls, Has.One.StartsWith("failed relay1: connect to 10.0.0.1:587 failed"));
        Assert.That(observer.Events.Select(e => (e.Kind, e.Relay)), Does.Contain((PoolEventKind.Down, "relay1")));
        Assert.That(pool.Snapshot().Single(s => s.Name == "relay1").DownUntil, Is.Not.Null);
        Assert.That(pool.Snapshot().Single(s => s.Name == "relay2").Used, Is.True);
    }

    [Test]
    public async Task A_primary_greeting_with_421_is_skipped_for_the_next_relay()
    {
        var scripted = new ScriptedConnector(
            new ScriptedDialogue().Server("421 4.3.2 relay1 busy"),
            ScriptedDialogue.Greeted("out.relay.test").Client("QUIT"));
        var (source, _, observer, _) = Build(scripted);

        await using var lease = source.Lease(Origin("alice"));

        Assert.That(await lease.ConnectAsync(CancellationToken.None), Is.Null);
        Assert.That(lease.Relay, Is.EqualTo("relay2"));
        Assert.That(observer.Calls, Has.One.Contains("failed relay1: refused at Greeting: 421 4.3.2 relay1 busy"));
    }

    [Test]
    public async Task With_no_usable_relay_the_client_gets_451_4_4_1_with_each_relays_reason_and_nothing_goes_direct()
    {
        var (source, connector, _, _) = Build(new ScriptedConnector(), refused: [Relay1, Relay2]);

        await using var lease = source.Lease(Origin("alice"));
        var refusal = await lease.ConnectAsync(CancellationToken.None);

        Assert.That(refusal!.Code, Is.EqualTo(451));
        Assert.That(refusal.EnhancedCode, Is.EqualTo("4.4.1"));
        Assert.That(refusal.Text, Does.StartWith("no relay available: relay1: connect to 10.0.0.1:587 failed").And.Contain("relay2: connect to 10.0.0.2:587 failed"));
        Assert.That(connector.Endpoints, Has.None.EqualTo(ScriptedConnector.Mx), "never a direct send");
    }

    [Test]
    public async Task Burn_replies_on_a_relay_session_burn_it_and_promote_the_standby_and_a_2xx_to_the_end_of_data_counts_as_carried()
    {
        const string banned = "550 5.7.606 Access denied, banned sending IP [198.51.100.1]";
        var scripted = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<a@site.test>").Server("250 2.1.0 Ok")
            .Client("RCPT TO:<b@example.net>").Server(banned)
            .Client("RCPT TO:<c@example.net>").Server("250 2.1.5 Ok")
            .Client("DATA").Server("354 go")
            .ClientBytes("x\r\n.\r\n").Server("250 2.0.0 queued")
            .Client("QUIT"));
        var (source, _, observer, pool) = Build(scripted, threshold: 1);

        await using (var lease = source.Lease(Origin("alice")))
        {
            await lease.MailAsync(new EnvelopeCommand("a@site.test", []), CancellationToken.None);
            Assert.That((await lease.RcptAsync("<b@example.net>", CancellationToken.None)).Code, Is.EqualTo(550));
            await lease.RcptAsync("<c@example.net>", CancellationToken.None);
            await lease.DataAsync(CancellationToken.None);
            Assert.That((await lease.FinishDataAsync("x\r\n.\r\n"u8.ToArray(), CancellationToken.None)).Code, Is.EqualTo(250));
        }

        Assert.That(pool.Snapshot().Single(s => s.Name == "relay1").Status, Is.EqualTo(RelayStatus.Burned));
        Assert.That(observer.Events.Select(e => (e.Kind, e.Relay)), Is.SupersetOf(new[] { (PoolEventKind.Burned, "relay1"), (PoolEventKind.Promoted, "relay2") }));
        Assert.That(observer.Calls, Is.EqualTo(new[] { "failed relay1: Rcpt: " + banned, "carried relay1" }));
        Assert.That(pool.Choose(new HashSet<string>()), Is.EqualTo("relay2"));
    }

    [Test]
    public async Task A_relay_burns_on_two_users_refusals_even_over_one_reused_session_and_never_on_one_users_alone()
    {
        // Burn.RelayMinUsers (2): a customer chooses what a relay quotes back to her; one shared login's session, handed
        // from alice to bob by the reuse cache, must still tell whose mail drew each reply.
        const string banned = "550 5.7.606 Access denied, banned sending IP [198.51.100.1]";
        var scripted = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<a@site.test>").Server("250 2.1.0 Ok")
            .Client("RCPT TO:<b@example.net>").Server(banned)
            .Client("RCPT TO:<c@example.net>").Server(banned)
            .Client("RCPT TO:<d@example.net>").Server(banned)
            .Client("RSET").Server("250 2.0.0 Ok")
            .Client("MAIL FROM:<b@bob.test>").Server("250 2.1.0 Ok")
            .Client("RCPT TO:<e@example.net>").Server(banned)
            .Client("RSET").Server("250 2.0.0 Ok")
            .Client("QUIT"));
        var connector = new RoutingConnector(scripted);
        var pool = NewPool(threshold: 2);
        var cache = new UpstreamConnectionCache(Settings with { Reuse = new UpstreamReuse(true, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), 100, 4) }, connector);
        var source = new PoolUpstreamSource(Relays, pool, new RecordingPoolObserver(), RelayCredentials.Empty, cache, connector);

        await using (var lease = source.Lease(Origin("alice")))
        {
            var mail = await lease.MailAsync(new EnvelopeCommand("a@site.test", []), CancellationToken.None);
            Assert.That(mail.Reply.Code, Is.EqualTo(250), mail.Reply.ToString());
            foreach (var rcpt in new[] { "<b@example.net>", "<c@example.net>", "<d@example.net>" })
            {
                Assert.That((await lease.RcptAsync(rcpt, CancellationToken.None)).Code, Is.EqualTo(550));
            }
        }

        Assert.That(pool.Snapshot().Single(s => s.Name == "relay1").Status, Is.EqualTo(RelayStatus.InRotation), "alice's three refusals alone");
        await using (var lease = source.Lease(Origin("bob") with { Uid = 1002 }))
        {
            var mail = await lease.MailAsync(new EnvelopeCommand("b@bob.test", []), CancellationToken.None);
            Assert.That(mail.Reply.Code, Is.EqualTo(250), mail.Reply.ToString());
            Assert.That((await lease.RcptAsync("<e@example.net>", CancellationToken.None)).Code, Is.EqualTo(550));
        }

        Assert.That(scripted.Connections, Has.Count.EqualTo(1), "bob's lease reused alice's session");
        Assert.That(pool.Snapshot().Single(s => s.Name == "relay1").Status, Is.EqualTo(RelayStatus.Burned), "a second user's refusal confirms it");
    }

    [Test]
    public void The_login_refused_reply_is_a_4xx_naming_the_relay_and_the_user()
    {
        var reply = PoolUpstreamSource.LoginRefusedReply("relay1", "alice");

        Assert.That(reply.ToWire(), Is.EqualTo("454 4.7.0 relay relay1 refused the login of user alice; the admin has been alerted\r\n"));
    }
}
