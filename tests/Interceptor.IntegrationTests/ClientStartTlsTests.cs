using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 18: clients that insist on STARTTLS keep working. Real clients (smtplib, PHPMailer, openssl s_client) as the
/// unprivileged smtpi-alice dial the MX by name; the daemon shows them a certificate for that name signed by the
/// host-local CA, which they trust through a test-local cafile only.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class ClientStartTlsTests
{
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private static TestUser Alice => TestUsers.Alice;

    [Test]
    public async Task Smtplib_starttls_with_a_verifying_context_for_the_mx_name_delivers_with_the_trace_header()
    {
        await using var w = await StartTlsWorld.StartAsync();
        var message = TestMessage.Small(From, To, "smtplib-starttls");

        var (result, process) = await w.SmtplibAsync(Alice, message, "--cafile", w.CaCertificate);

        var context = "\n" + process.Describe() + w.Describe();
        Assert.That(result.GetProperty("ok").GetBoolean(), Is.True, context);
        Assert.That(result.GetProperty("san").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { "DNS:" + StartTlsWorld.MxName }), "the certificate names what it dialled" + context);
        var relayed = w.Scenario.RequireMx.Messages();
        Assert.That(relayed, Has.Count.EqualTo(1), context);
        TraceHeader.AssertPrepended(relayed[0], Alice, message, context);
        var started = w.Daemon.LogLines().Single(l => l.Message.StartsWith("STARTTLS for", StringComparison.Ordinal));
        Assert.That(started.Message, Does.Contain($"uid={Alice.Uid} user={Alice.Name}").And.Contain("sni=" + StartTlsWorld.MxName), context);
    }

    [Test]
    public async Task Phpmailer_with_smtpsecure_tls_and_default_verification_delivers()
    {
        await using var w = await StartTlsWorld.StartAsync();
        var script = w.Scenario.Dir.Write("starttls_phpmailer.php", await File.ReadAllBytesAsync(Path.Combine(TestDirectory.FixturesDirectory, "starttls_phpmailer.php")));

        var (result, process) = await w.RunJsonAsync(Alice, Php, ["-d", "openssl.cafile=" + w.CaCertificate, script, StartTlsWorld.MxName, From, To]);

        var context = "\n" + process.Describe() + w.Describe();
        Assert.That(result.GetProperty("ok").GetBoolean(), Is.True, context);
        var relayed = w.Scenario.RequireMx.Messages();
        Assert.That(relayed, Has.Count.EqualTo(1), context);
        Assert.That(TraceHeader.TryParse(relayed[0].FirstLine)?.User, Is.EqualTo(Alice.Name), context);
        Assert.That(relayed[0].Text, Does.Contain("sent by PHPMailer after STARTTLS"), context);
    }

    [Test]
    public async Task Openssl_s_client_verifies_the_certificate_for_the_servername_and_delivers()
    {
        await using var w = await StartTlsWorld.StartAsync();
        var message = TestMessage.Small(From, To, "openssl-starttls");
        var file = w.Scenario.Dir.Write("openssl.eml", TestMessage.DotStuff(message));

        var (result, process) = await w.RunJsonAsync(Alice, Requirements.Python,
            ["-I", w.Scenario.Dir.PathOf("starttls_openssl.py"), "--host", StartTlsWorld.MxName, "--connect", NetworkNamespace.MxAddress4, "--cafile", w.CaCertificate, "--from", From, "--to", To, "--file", file]);

        var context = "\n" + process.Describe() + w.Describe();
        var stderr = result.GetProperty("stderr").GetString();
        Assert.That(result.GetProperty("ok").GetBoolean(), Is.True, context);
        Assert.That(stderr, Does.Contain("Verification: OK"), context);
        Assert.That(stderr, Does.Contain("CN = " + StartTlsWorld.MxName).Or.Contain("CN=" + StartTlsWorld.MxName), "the peer certificate names the server name" + context);
        var relayed = w.Scenario.RequireMx.Messages();
        Assert.That(relayed, Has.Count.EqualTo(1), context);
        TraceHeader.AssertPrepended(relayed[0], Alice, message, context);
    }

    [Test]
    public async Task Without_the_ca_trusted_a_verifying_client_fails_and_a_non_verifying_one_delivers()
    {
        await using var w = await StartTlsWorld.StartAsync();

        var (verifying, first) = await w.SmtplibAsync(Alice, TestMessage.Small(From, To, "verifying"), "--system-trust");
        var (lenient, second) = await w.SmtplibAsync(Alice, TestMessage.Small(From, To, "lenient"), "--no-verify");

        var context = "\n" + first.Describe() + "\n" + second.Describe() + w.Describe();
        Assert.That(verifying.GetProperty("ok").GetBoolean(), Is.False, context);
        Assert.That(verifying.GetProperty("error").GetString(), Does.Contain("CERTIFICATE_VERIFY_FAILED"), context);
        Assert.That(lenient.GetProperty("ok").GetBoolean(), Is.True, context);
        var relayed = w.Scenario.RequireMx.Messages();
        Assert.That(relayed.Select(m => m.Text), Has.One.Contains("lenient").And.None.Contains("verifying"), context);
        Assert.That(w.Daemon.LogLines().Select(l => l.Message), Has.Some.Contains($"uid={Alice.Uid} user={Alice.Name}: the TLS handshake after STARTTLS failed"), context);
    }

    [Test]
    public async Task A_ca_renewed_while_the_daemon_runs_signs_the_next_handshakes_without_a_restart()
    {
        await using var w = await StartTlsWorld.StartAsync();
        var (before, first) = await w.SmtplibAsync(Alice, TestMessage.Small(From, To, "before-renewal"), "--cafile", w.CaCertificate);
        var oldCa = w.Scenario.Dir.Write("old-ca.crt", await File.ReadAllBytesAsync(w.CaCertificate));

        // Renewed as the README says: both files removed, `client-ca create` as root. This daemon runs as root, so the README's
        // chown of the new key to the daemon's user is not needed here.
        File.Delete(w.CaCertificate);
        File.Delete(w.Scenario.Dir.PathOf("client-ca/ca.key"));
        var created = await StartTlsWorld.CreateCaAsync(w.Scenario.Ns, w.Daemon.ConfigPath);
        Assert.That(created.Succeeded, Is.True, created.Describe());
        await Task.Delay(Interceptor.Smtp.Tls.ReloadingClientCa.CheckInterval + TimeSpan.FromSeconds(0.5));
        var (withNew, second) = await w.SmtplibAsync(Alice, TestMessage.Small(From, To, "after-renewal"), "--cafile", w.CaCertificate);
        var (withOld, third) = await w.SmtplibAsync(Alice, TestMessage.Small(From, To, "old-trust"), "--cafile", oldCa);

        var context = "\n" + first.Describe() + "\n" + second.Describe() + "\n" + third.Describe() + w.Describe();
        Assert.That(before.GetProperty("ok").GetBoolean(), Is.True, context);
        Assert.That(withNew.GetProperty("ok").GetBoolean(), Is.True, "the renewed CA signs without a restart" + context);
        Assert.That(withOld.GetProperty("ok").GetBoolean(), Is.False, "the old CA signs no more" + context);
        Assert.That(withOld.GetProperty("error").GetString(), Does.Contain("CERTIFICATE_VERIFY_FAILED"), context);
        Assert.That(w.Daemon.LogLines().Select(l => l.Message), Has.One.StartsWith("client CA " + w.CaCertificate + " reloaded"), context);
    }

    [Test]
    public async Task Off_mode_offers_no_starttls_and_a_client_that_requires_it_fails_as_before()
    {
        await using var w = await StartTlsWorld.StartAsync(mode: "Off");

        var (result, process) = await w.SmtplibAsync(Alice, TestMessage.Small(From, To, "off"), "--no-verify");

        var context = "\n" + process.Describe() + w.Describe();
        Assert.That(result.GetProperty("offered").GetBoolean(), Is.False, context);
        Assert.That(result.GetProperty("error").GetString(), Does.StartWith("SMTPNotSupportedError"), context);
        Assert.That(w.Scenario.RequireMx.Messages(), Is.Empty, context);
    }

    [Test]
    public async Task Commands_pipelined_in_the_starttls_packet_are_not_executed_after_the_handshake()
    {
        await using var w = await StartTlsWorld.StartAsync();

        // The raw client sends STARTTLS and the injected commands in one write, then does the handshake and asks NOOP.
        var (result, process) = await w.RunJsonAsync(Alice, Requirements.Python,
            ["-I", w.Scenario.Dir.PathOf("starttls_inject.py"), "--host", StartTlsWorld.MxName, "--cafile", w.CaCertificate]);

        var context = "\n" + process.Describe() + w.Describe();
        Assert.That(result.GetProperty("ready").GetString(), Does.StartWith("220"), context);
        Assert.That(result.GetProperty("first_under_tls").GetString(), Is.EqualTo("250 2.0.0 Ok"), "the first reply under TLS is NOOP's" + context);
        Assert.That(result.GetProperty("mail_under_tls").GetString(), Does.StartWith("503 5.5.1 Error: send HELO/EHLO first"), context);
        Assert.That(w.Scenario.RequireMx.Transcript(), Does.Not.Contain("injected@evil.test"), context);
        Assert.That(w.Daemon.LogLines().Select(l => l.Message), Has.Some.Match(@"STARTTLS for uid=\d+ user=smtpi-alice: .* [1-9]\d* byte\(s\) sent before the handshake discarded"), context);
    }

    [Test]
    public async Task Starttls_twice_gets_503_and_a_client_stalling_mid_handshake_is_cut_off_and_logged()
    {
        await using var w = await StartTlsWorld.StartAsync(commandLineTimeoutSeconds: 2);

        var (twice, first) = await w.RunJsonAsync(Alice, Requirements.Python,
            ["-I", w.Scenario.Dir.PathOf("starttls_inject.py"), "--host", StartTlsWorld.MxName, "--cafile", w.CaCertificate, "--twice"]);
        var (stall, second) = await w.RunJsonAsync(Alice, Requirements.Python,
            ["-I", w.Scenario.Dir.PathOf("starttls_inject.py"), "--host", StartTlsWorld.MxName, "--cafile", w.CaCertificate, "--stall"]);

        var context = "\n" + first.Describe() + "\n" + second.Describe() + w.Describe();
        Assert.That(twice.GetProperty("second_starttls").GetString(), Is.EqualTo("503 5.5.1 Error: TLS already active"), context);
        Assert.That(stall.GetProperty("closed_after_seconds").GetDouble(), Is.InRange(1.5, 10), "bounded by Smtp.CommandLineTimeoutSeconds" + context);
        Assert.That(w.Daemon.LogLines().Select(l => l.Message), Has.Some.Contains($"uid={Alice.Uid} user={Alice.Name}: the TLS handshake after STARTTLS did not finish within 2 s"), context);
    }

    [Test]
    public async Task A_ca_key_that_others_can_read_stops_the_daemon_naming_the_file_and_mode()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var configPath = DaemonProcess.WriteConfig(s.Dir, StartTlsWorld.Config(s.Dir, "Mint"));
        var created = await StartTlsWorld.CreateCaAsync(s.Ns, configPath);
        Assert.That(created.Succeeded, Is.True, created.Describe());
        var key = s.Dir.PathOf("client-ca/ca.key");
        Assert.That(File.GetUnixFileMode(key), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "created 0600");
        File.SetUnixFileMode(key, (UnixFileMode)0b110_100_100);

        var run = await DaemonProcess.RunVerbAsync(s.Ns, "run", configPath);

        Assert.That(run.ExitCode, Is.EqualTo(3), run.Describe());
        Assert.That(run.Stdout + run.Stderr, Does.Contain($"ClientTls.CaKey: {key} has mode 0644"), run.Describe());
    }

    [Test]
    public async Task Client_ca_install_puts_the_ca_in_the_system_trust_store_and_uninstall_takes_it_out()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var configPath = DaemonProcess.WriteConfig(s.Dir, StartTlsWorld.Config(s.Dir, "Mint"));
        var created = await StartTlsWorld.CreateCaAsync(s.Ns, configPath);
        Assert.That(created.Succeeded, Is.True, created.Describe());
        var ca = s.Dir.PathOf("client-ca/ca.crt");

        // The real update-ca-certificates, in a private mount namespace whose trust store directories are empty
        // tmpfs copies: the host's store is never touched.
        var verb = $"{DaemonProcess.DotnetHost} {DaemonProcess.AssemblyPath} client-ca";
        var script = $"""
            set -e
            for d in /usr/local/share/ca-certificates /etc/ssl/certs /etc/ca-certificates/update.d; do mount -t tmpfs tmpfs "$d"; done
            {verb} install --config {configPath}
            echo "trusted-after-install: $(openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt {ca} 2>&1 | tail -1)"
            {verb} uninstall --config {configPath}
            echo "trusted-after-uninstall: $(openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt {ca} 2>&1 | tail -1)"
            """;

        var run = await ProcessRunner.RunAsync(Requirements.Require("unshare"), ["--mount", "--propagation", "private", "/bin/sh", "-c", script], TimeSpan.FromMinutes(3));

        Assert.That(run.Succeeded, Is.True, run.Describe());
        Assert.That(run.Stdout, Does.Contain("the system trusts").And.Contain("whoever holds its key can impersonate any TLS server"), run.Describe());
        Assert.That(run.Stdout, Does.Contain($"trusted-after-install: {ca}: OK"), run.Describe());
        Assert.That(run.Stdout, Does.Contain("trusted-after-uninstall: error"), run.Describe());
        Assert.That(File.Exists(ClientCaTrustedCopy), Is.False, "the host's own store was not touched");
    }

    private const string ClientCaTrustedCopy = Interceptor.Daemon.Commands.ClientCaCommand.TrustedCopy;

    private static string Php => Requirements.Which("php") ?? (Requirements.UnderCi
        ? throw new AssertionException("php not installed (packages php-cli, libphp-phpmailer)")
        : throw new IgnoreException("php not installed (packages php-cli, libphp-phpmailer)"));
}
