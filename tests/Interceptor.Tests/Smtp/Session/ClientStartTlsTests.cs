using System.Security.Cryptography.X509Certificates;
using System.Text;
using Interceptor.Core.Options;
using Interceptor.Smtp.Tls;
using Interceptor.Tests.Smtp.Tls;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Issue 18: STARTTLS on the intercepted hop (ClientTls.Mode Mint) and its absence when Off.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class ClientStartTlsTests
{
    private static readonly Lazy<ClientTlsServer> Tls = new(() => TestClientCa.Server());

    /// <summary>What the test client trusts: the CA's certificate alone, as a client with the CA installed would.</summary>
    private static X509Certificate2 Ca => X509CertificateLoader.LoadCertificateFromFile(TestClientCa.CertificatePath);

    [Test]
    public async Task Ehlo_offers_starttls_and_after_the_handshake_the_session_starts_over_and_relays_with_the_trace_header()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: Tls.Value);
        var ehlo = await relay.Client.GreetAsync();

        var ready = await relay.Client.CommandAsync("STARTTLS");
        using var certificate = await relay.Client.StartTlsAsync("mx.example.net", Ca);
        var mailBeforeEhlo = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        var secureEhlo = await relay.Client.CommandAsync("EHLO web1.customer.test");
        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: tls\r\n\r\nover TLS\r\n");

        Assert.That(ehlo.Keywords, Does.Contain("STARTTLS"));
        Assert.That(ready.Text, Is.EqualTo("220 2.0.0 Ready to start TLS"));
        Assert.That(certificate.GetNameInfo(X509NameType.DnsName, false), Is.EqualTo("mx.example.net"), "the name the client dialled");
        Assert.That(mailBeforeEhlo.Text, Is.EqualTo("503 5.5.1 Error: send HELO/EHLO first"), "nothing of before the handshake is kept");
        Assert.That(secureEhlo.Keywords, Does.Not.Contain("STARTTLS"), "not offered twice");
        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        var session = await upstream.SessionAsync(0);
        var (header, body) = RelayHarness.SplitTraceHeader(session.Messages.Single());
        Assert.That(header, Does.StartWith($"X-Interceptor-Origin: uid={RelayHarness.Uid} user={RelayHarness.User};"));
        Assert.That(Encoding.UTF8.GetString(body), Is.EqualTo("Subject: tls\r\n\r\nover TLS\r\n"));
    }

    [Test]
    public async Task Without_sni_the_certificate_names_the_dialled_address()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: Tls.Value);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("STARTTLS");

        using var certificate = await relay.Client.StartTlsAsync(null, Ca);

        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.That(names.EnumerateIPAddresses(), Is.EqualTo(new[] { upstream.EndPoint.Address }));
    }

    [Test]
    public async Task Commands_pipelined_behind_starttls_are_discarded_not_run_under_tls()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: Tls.Value);
        await relay.Client.GreetAsync();

        // CVE-2011-0411: the injected commands travel in the same packet as STARTTLS.
        await relay.Client.SendAsync("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil.test>\r\n");
        var ready = await relay.Client.ReadReplyAsync();
        using var _ = await relay.Client.StartTlsAsync("mx.example.net", Ca);
        var first = await relay.Client.CommandAsync("NOOP");
        var mail = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");

        Assert.That(ready.Code, Is.EqualTo(220));
        Assert.That(first.Text, Is.EqualTo("250 2.0.0 Ok"), "the first reply under TLS answers our first command under TLS");
        Assert.That(mail.Text, Is.EqualTo("503 5.5.1 Error: send HELO/EHLO first"), "no injected MAIL opened a transaction");
        var session = await upstream.SessionAsync(0);
        Assert.That(session.Commands, Has.None.Contains("injected"));
        Assert.That(session.Commands, Has.None.EqualTo("RSET"));
    }

    [Test]
    public async Task Starttls_twice_gets_503_and_the_session_goes_on()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: Tls.Value);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("STARTTLS");
        using var _ = await relay.Client.StartTlsAsync("mx.example.net", Ca);
        await relay.Client.CommandAsync("EHLO web1.customer.test");

        var again = await relay.Client.CommandAsync("STARTTLS");
        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(again.Text, Is.EqualTo("503 5.5.1 Error: TLS already active"));
        Assert.That(final.Code, Is.EqualTo(250));
    }

    [Test]
    public async Task Starttls_is_refused_before_ehlo_and_inside_a_transaction()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: Tls.Value);
        await relay.Client.ReadReplyAsync();

        var beforeEhlo = await relay.Client.CommandAsync("STARTTLS");
        await relay.Client.CommandAsync("EHLO web1.customer.test");
        var withArgument = await relay.Client.CommandAsync("STARTTLS now");
        await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        var inTransaction = await relay.Client.CommandAsync("STARTTLS");

        Assert.That(beforeEhlo.Text, Is.EqualTo("503 5.5.1 Error: send HELO/EHLO first"));
        Assert.That(withArgument.Text, Is.EqualTo("501 5.5.4 Syntax: STARTTLS"));
        Assert.That(inTransaction.Text, Is.EqualTo("503 5.5.1 Error: MAIL transaction in progress"));
    }

    [Test]
    public async Task A_client_that_stalls_mid_handshake_is_cut_off_after_the_command_line_time()
    {
        var options = RelayHarness.Options with { Smtp = RelayHarness.Options.Smtp with { CommandLineTimeout = TimeSpan.FromSeconds(1) } };
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options, clientTls: Tls.Value);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("STARTTLS");

        // Half a TLS record header, then silence.
        await relay.Client.SendAsync([0x16, 0x03]);

        Assert.That(await relay.Client.IsClosedAsync(TimeSpan.FromSeconds(5)), Is.True);
        await relay.Session.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Test]
    public async Task A_certificate_that_cannot_be_minted_ends_the_session_as_a_failed_handshake_not_as_a_fault()
    {
        // The CA expired while the daemon ran: minting throws from inside SslStream's certificate callback.
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var tls = TestClientCa.Server(cacheSize: 4, clock);
        using (var ca = TestClientCa.Load())
        {
            clock.Now = new DateTimeOffset(ca.Certificate.NotAfter.ToUniversalTime()).AddDays(1);
        }

        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: tls);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("STARTTLS");

        Assert.CatchAsync(() => relay.Client.StartTlsAsync("mx.example.net", Ca));

        // RunAsync never throws for what happens in a session (the daemon logs a fault as "session failed", event 202).
        Assert.DoesNotThrowAsync(() => relay.Session.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.That(tls.Certificates.Minted, Is.Zero);
    }

    [Test]
    public async Task Plain_text_after_the_220_ends_the_session()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, clientTls: Tls.Value);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("STARTTLS");

        await relay.Client.SendAsync("MAIL FROM:<alice@customer.test>\r\n");

        Assert.That(await relay.Client.IsClosedAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That((await upstream.SessionAsync(0)).Commands, Has.None.StartsWith("MAIL"));
    }

    [Test]
    public async Task Off_mode_offers_no_starttls_and_answers_502_in_every_state()
    {
        Assert.That(new ClientTlsOptions().Mode, Is.EqualTo(ClientTlsMode.Off), "the default");
        await using var upstream = new ScriptedUpstream(new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.ReadReplyAsync();

        var beforeEhlo = await relay.Client.CommandAsync("STARTTLS");
        var ehlo = await relay.Client.CommandAsync("EHLO web1.customer.test");
        await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        var inTransaction = await relay.Client.CommandAsync("STARTTLS");

        const string NotOffered = "502 5.5.1 STARTTLS is not offered on this local hop; the relay uses TLS upstream when it can";
        Assert.That(ehlo.Keywords, Has.None.StartsWith("STARTTLS"));
        Assert.That(beforeEhlo.Text, Is.EqualTo(NotOffered));
        Assert.That(inTransaction.Text, Is.EqualTo(NotOffered));
    }
}
