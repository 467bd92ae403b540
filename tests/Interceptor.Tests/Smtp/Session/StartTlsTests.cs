using System.Text;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class StartTlsTests
{
    [OneTimeSetUp]
    public Task WarmUp() => ScriptedUpstream.WarmUpTlsAsync();

    [Test]
    public async Task The_relay_upgrades_to_tls_when_the_upstream_offers_starttls_and_the_message_arrives()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { OfferStartTls = true });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var ehlo = await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: tls\r\n\r\nover TLS\r\n");

        Assert.That(ehlo.Keywords, Has.None.StartsWith("STARTTLS"), "the local hop never offers STARTTLS");
        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        var session = await upstream.SessionAsync(0);
        Assert.That(session.TlsEstablished, Is.True, "a TLS handshake took place");
        Assert.That(session.Commands.Take(3), Is.EqualTo(new[]
        {
            $"EHLO {RelayHarness.HeloName}",
            "STARTTLS",
            $"EHLO {RelayHarness.HeloName}",
        }), "EHLO again after the handshake (RFC 3207)");
        Assert.That(session.Messages, Has.Count.EqualTo(1));
        Assert.That(Encoding.UTF8.GetString(RelayHarness.SplitTraceHeader(session.Messages[0]).Body), Is.EqualTo("Subject: tls\r\n\r\nover TLS\r\n"));
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Upstream, Does.Contain("TLS"));
    }

    [Test]
    public async Task The_client_asking_for_starttls_on_the_local_hop_is_told_no_and_can_go_on()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript { OfferStartTls = true });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();

        var starttls = await relay.Client.CommandAsync("STARTTLS");
        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(starttls.Code, Is.EqualTo(502));
        Assert.That(final.Code, Is.EqualTo(250));
    }

    [Test]
    public async Task A_tls_handshake_the_upstream_refuses_falls_back_to_plain_text()
    {
        var spoiled = new UpstreamScript { OfferStartTls = true, TlsFault = TlsFault.Alert };
        await using var upstream = new ScriptedUpstream(spoiled, new UpstreamScript { OfferStartTls = true });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);

        var greeting = await relay.Client.ReadReplyAsync();

        // Opportunistic TLS as MTAs do it: a failed handshake means a new connection in plain text.
        Assert.That(greeting.Code, Is.EqualTo(220), greeting.Text);
        var retry = await upstream.SessionAsync(1);
        Assert.That(retry.Commands, Is.EqualTo(new[] { $"EHLO {RelayHarness.HeloName}" }));
        Assert.That(retry.TlsEstablished, Is.False);
    }

    [TestCase(TlsFault.Stall)]
    [TestCase(TlsFault.Drop)]
    
    public async Task A_failed_tls_handshake_upstream_still_gets_the_client_a_proper_reply(TlsFault fault)
    {
        var spoiled = new UpstreamScript { OfferStartTls = true, TlsFault = fault };
        await using var upstream = new ScriptedUpstream(spoiled, new UpstreamScript { OfferStartTls = true, TlsFault = fault });
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.ShortTimeouts);

        var greeting = await relay.Client.ReadReplyAsync();

        // Either a plain-text retry (220) or "upstream unavailable" (421 4.4.1); never silence,
        // and never a claim that the client's session lasted an hour.
        Assert.That(greeting.Code == 220 || greeting.Text.StartsWith("421 4.4.1 ", StringComparison.Ordinal), greeting.Text);
    }
}
