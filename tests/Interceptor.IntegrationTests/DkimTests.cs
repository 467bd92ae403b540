using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using DnsClient;
using Interceptor.Smtp.Identity;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 17: smtpi-alice owns example.test (Domains.Source File); what the fake MX receives is verified by dkimpy (Debian's
/// python3-dkim, an independent implementation) against the public key a local DNS server (dnsmasq) serves. The key pair
/// is made by openssl.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class DkimTests
{
    private const string Mx = "127.0.0.2:25";
    private const string To = "rcpt@example.net";

    // dkimpy asks dnsfunc for the key record; it gets what the DNS server answered for exactly that name.
    private const string VerifyScript = """
        import sys, dkim
        expected, record = sys.argv[2], open(sys.argv[3], "rb").read()
        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            return record if name.rstrip(".") == expected else None
        message = open(sys.argv[1], "rb").read()
        print("PASS" if dkim.verify(message, dnsfunc=dnsfunc) else "FAIL")
        """;

    private static async Task<string> RunAsync(string program, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.That(process.ExitCode, Is.Zero, $"{program} {string.Join(' ', arguments)}: {error}");
        return output + error;
    }

    /// <summary>A key directory (0700) holding example.test/default.key made by openssl genpkey with these options.</summary>
    private static async Task<(string Directory, string Key)> KeyForExampleTestAsync(TestDirectory work, string[] genpkey)
    {
        var keys = Path.Combine(work.Path, "dkim");
        Directory.CreateDirectory(Path.Combine(keys, "example.test"));
        File.SetUnixFileMode(keys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = Path.Combine(keys, "example.test", "default.key");
        await RunAsync("openssl", ["genpkey", .. genpkey, "-out", key]);
        return (keys, key);
    }

    [TestCase("rsa-sha256")]
    [TestCase("ed25519-sha256")]
    public async Task An_owned_domains_mail_is_signed_and_verifies_independently_and_an_altered_body_fails(string algorithm)
    {
        using var work = new TestDirectory();
        var (keys, keyPath) = await KeyForExampleTestAsync(work, algorithm == "rsa-sha256" ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] : ["-algorithm", "ed25519"]);
        var record = DkimKey.Parse(await File.ReadAllTextAsync(keyPath)).DnsRecord;
        await using var dns = await LocalDnsbl.StartAsync("example.test", new Dictionary<string, string>(), new Dictionary<string, string> { ["default._domainkey.example.test"] = record });
        var domains = work.Write("domains", $"{TestUsers.Alice.Name}: example.test\n");
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?>
            {
                ["Domains.Source"] = "File", ["Domains.File"] = domains,
                ["Dkim.Enabled"] = true, ["Dkim.KeyDirectory"] = keys, ["Dkim.Algorithms"] = new JsonArray(algorithm),
            },
        };
        await using var s = await Scenario.StartAsync(config: config);
        var body = s.Dir.Write("m.txt", "From: Alice <alice@example.test>\r\nTo: rcpt@example.net\r\nSubject:  signed\r\n\r\nhello   world \r\n..a dot line\r\n\r\n\r\n.\r\n");

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, "alice@example.test", [To], body, timeoutSeconds: 30));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
        var received = s.RequireMx.Messages().Single();
        Assert.That(received.Text, Does.StartWith("DKIM-Signature: v=1; a=" + algorithm), context);

        // The key as the DNS server serves it (the daemon never consults it).
        var lookup = new LookupClient(new LookupClientOptions(dns.EndPoint) { UseCache = false, Timeout = TimeSpan.FromSeconds(3) });
        var answer = await lookup.QueryAsync("default._domainkey.example.test", QueryType.TXT);
        var served = string.Concat(answer.Answers.TxtRecords().Single().Text);
        Assert.That(served, Is.EqualTo(record), dns.Transcript());
        var recordPath = work.Write("record", served);
        var script = work.Write("verify.py", VerifyScript);
        var good = work.Write("received.eml", received.Bytes);
        var altered = work.Write("altered.eml", Encoding.UTF8.GetBytes(received.Text.Replace("hello", "hellO", StringComparison.Ordinal)));

        Assert.That((await RunAsync("/usr/bin/python3", script, good, "default._domainkey.example.test", recordPath)).Trim(), Is.EqualTo("PASS"), received.Text + context);
        Assert.That((await RunAsync("/usr/bin/python3", script, altered, "default._domainkey.example.test", recordPath)).Trim(), Is.EqualTo("FAIL"));

        // Re-sent by someone else with a field of theirs on top: one the message lacked (Reply-To), or a second Subject
        // (readers show the top one, verifiers take the bottom one). Over-signing makes either break the signature.
        foreach (var added in new[] { "Reply-To: pay@evil.example\r\n", "Subject: Overdue invoice\r\n" })
        {
            var resent = work.Write("resent.eml", Encoding.UTF8.GetBytes(added + received.Text));
            Assert.That((await RunAsync("/usr/bin/python3", script, resent, "default._domainkey.example.test", recordPath)).Trim(), Is.EqualTo("FAIL"), added);
        }

        // What a relay adds to a message that lacks it (Exim's and Postfix's submission: Date, Message-ID) keeps it valid.
        var endOfHeaders = received.Text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 2;
        var relayed = work.Write("relayed.eml", Encoding.UTF8.GetBytes(
            received.Text[..endOfHeaders] + "Date: Tue, 08 Dec 2026 04:00:00 +0000\r\nMessage-ID: <1@relay.example>\r\n" + received.Text[endOfHeaders..]));
        Assert.That((await RunAsync("/usr/bin/python3", script, relayed, "default._domainkey.example.test", recordPath)).Trim(), Is.EqualTo("PASS"), "Date and Message-ID added by a relay");

        Assert.That(s.RequireDaemon.LogLines().Select(l => l.Message), Has.Some.Contains("dkim=pass d=example.test"), context);
    }

    /// <summary>
    /// The panels' maps, read from fixtures in their own format (Domains.File points the source at the fixture): alice's
    /// mail for example.test is signed; bob, who owns only bob.test, sending as example.test is relayed unsigned
    /// (not-owned), and with the default FromPolicy Log the forged From: is logged and relayed.
    /// </summary>
    [TestCase("Cpanel")]
    [TestCase("DirectAdmin")]
    public async Task A_panels_map_decides_who_gets_signed_and_another_user_cannot_sign_for_example_test(string source)
    {
        using var work = new TestDirectory();
        var (keys, _) = await KeyForExampleTestAsync(work, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]);
        var fixture = source == "Cpanel"
            ? $"example.test: {TestUsers.Alice.Name}\nbob.test: {TestUsers.Bob.Name}\n*: nobody\n"
            : $"example.test: {TestUsers.Alice.Name}\nbob.test: {TestUsers.Bob.Name}\n";
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?>
            {
                ["Domains.Source"] = source, ["Domains.File"] = work.Write("panel-map", fixture),
                ["Dkim.Enabled"] = true, ["Dkim.KeyDirectory"] = keys,
            },
        };
        await using var s = await Scenario.StartAsync(config: config);
        var body = s.Dir.Write("m.txt", "From: <someone@example.test>\r\nSubject: who\r\n\r\nhi\r\n.\r\n");

        var alice = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, "someone@example.test", [To], body, timeoutSeconds: 30));
        var bob = await Clients.DialogAsync(s.Ns, TestUsers.Bob, s.Dir, SmtpDialog.Transaction(Mx, "bob@bob.test", [To], body, timeoutSeconds: 30));

        var context = "\n" + alice.Describe() + bob.Describe() + s.Describe();
        var messages = s.RequireMx.Messages();
        var lines = s.RequireDaemon.LogLines().Select(l => l.Message).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(alice.Reply("BODY")?.Code, Is.EqualTo(250), context);
            Assert.That(bob.Reply("BODY")?.Code, Is.EqualTo(250), "FromPolicy Log relays" + context);
            Assert.That(messages, Has.Count.EqualTo(2), context);
            Assert.That(messages.Count(m => m.Text.StartsWith("DKIM-Signature:", StringComparison.Ordinal)), Is.EqualTo(1), context);
            Assert.That(messages.Single(m => m.MailFrom.Contains("bob.test", StringComparison.Ordinal)).Text, Does.Not.Contain("DKIM-Signature"), context);
            Assert.That(lines, Has.Some.Contains($"dkim=none reason=not-owned domain=example.test").And.Contains($"user={TestUsers.Bob.Name}"), context);
            Assert.That(lines, Has.Some.Contains("from-policy=Log reason=not-owned domain=example.test").And.Contains($"user={TestUsers.Bob.Name}"), context);
        });
    }

    [Test]
    public async Task Refuse_mode_answers_550_for_a_forged_from_and_nothing_reaches_the_mx()
    {
        using var work = new TestDirectory();
        var domains = work.Write("domains", $"{TestUsers.Alice.Name}: example.test\n");
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?> { ["Domains.Source"] = "File", ["Domains.File"] = domains, ["FromPolicy.Mode"] = "Refuse" },
        };
        await using var s = await Scenario.StartAsync(config: config);
        var body = s.Dir.Write("m.txt", "From: Security <security@paypal.com>\r\nSubject: verify\r\n\r\nclick\r\n.\r\n");

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, "alice@example.test", [To], body, timeoutSeconds: 30));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.Reply("BODY")?.Raw, Does.Contain($"550 5.7.1 From: domain paypal.com is not a domain of user {TestUsers.Alice.Name}"), context);
        Assert.That(s.RequireMx.Messages(), Is.Empty, context);
    }

    [Test]
    public async Task A_key_directory_others_can_read_stops_the_daemon_naming_path_and_mode()
    {
        using var work = new TestDirectory();
        var keys = Path.Combine(work.Path, "dkim");
        Directory.CreateDirectory(keys);
        File.SetUnixFileMode(keys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var domains = work.Write("domains", $"{TestUsers.Alice.Name}: example.test\n");
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?> { ["Domains.Source"] = "File", ["Domains.File"] = domains, ["Dkim.Enabled"] = true, ["Dkim.KeyDirectory"] = keys },
        };

        await using var ns = await NetworkNamespace.CreateAsync();
        var configPath = DaemonProcess.WriteConfig(work, config);

        var run = await ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "run", "--config", configPath], TimeSpan.FromSeconds(60));

        Assert.That(run.ExitCode, Is.EqualTo(3), run.Describe());
        Assert.That(run.Describe(), Does.Contain($"Dkim.KeyDirectory {keys} has mode 0705"));
    }
}
