using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Interceptor.Smtp.Identity;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 17: `domains --check` against a real DNS server (dnsmasq in the daemon's namespace, as Burn.DnsServer) serving
/// good.test's correct records and bad.test's wrong ones; slow.test is forwarded to a socket that never answers.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class DomainsCheckTests
{
    private const string HostAddress = "203.0.113.5";

    /// <summary>Reads datagrams and never answers: DNS that times out.</summary>
    private const string SilentServer = """
        import socket, sys, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        print("listening", s.getsockname()[1], flush=True)
        while True:
            s.recvfrom(4096)
        """;

    private static string WriteKey(string keys, string domain)
    {
        Directory.CreateDirectory(Path.Combine(keys, domain));
        using var rsa = RSA.Create(2048);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        File.WriteAllText(Path.Combine(keys, domain, "default.key"), pem);
        return DkimKey.Parse(pem).DnsRecord;
    }

    private static Task<ProcessResult> CliAsync(Scenario s, params string[] arguments) =>
        s.Ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, .. arguments, "--config", s.Dir.PathOf("daemon-config.json")], TimeSpan.FromSeconds(60));

    private static JsonElement Entry(JsonElement data, string domain) =>
        data.GetProperty("domains").EnumerateArray().Single(d => d.GetProperty("domain").GetString() == domain);

    private static string Detail(JsonElement entry, string check) => entry.GetProperty(check).GetProperty("detail").GetString()!;

    private static bool Ok(JsonElement entry, string check) => entry.GetProperty(check).GetProperty("ok").GetBoolean();

    [Test]
    public async Task Check_reports_a_correct_domain_ok_names_each_wrong_thing_and_a_silent_domain_times_out_within_the_bound()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var keys = s.Dir.PathOf("dkim");
        Directory.CreateDirectory(keys);
        File.SetUnixFileMode(keys, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var goodKey = WriteKey(keys, "good.test");
        WriteKey(keys, "bad.test");
        WriteKey(keys, "slow.test");

        await using var silent = s.Ns.StartBackground("silent-dns", "/usr/bin/python3", ["-c", SilentServer]);
        var listening = await silent.WaitForLineAsync(l => l.StartsWith("listening ", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.That(listening, Is.Not.Null, silent.Transcript());
        var silentPort = listening!.Text["listening ".Length..].Trim();

        await using var dns = await LocalDnsbl.StartAsync(
            "test",
            new Dictionary<string, string>(),
            new Dictionary<string, string>
            {
                ["default._domainkey.good.test"] = goodKey,
                ["good.test"] = "v=spf1 include:_spf.good.test -all",
                ["_spf.good.test"] = "v=spf1 ip4:203.0.113.0/24 ~all",
                ["_dmarc.good.test"] = "v=DMARC1; p=reject",
                ["bad.test"] = "v=spf1 ip4:198.51.100.0/24 -all",
            },
            s.Ns,
            new Dictionary<string, string> { ["slow.test"] = "127.0.0.1#" + silentPort });
        var domains = s.Dir.Write("domains", $"{TestUsers.Alice.Name}: good.test bad.test\n{TestUsers.Bob.Name}: slow.test\n");
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?>
            {
                ["Domains.Source"] = "File", ["Domains.File"] = domains,
                ["Dkim.Enabled"] = true, ["Dkim.KeyDirectory"] = keys,
                ["Burn.DnsServer"] = dns.EndPoint.ToString(), ["Burn.HostAddress"] = HostAddress, ["Burn.DnsblZones"] = new JsonArray(),
            },
        };
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);

        var watch = Stopwatch.StartNew();
        var result = await CliAsync(s, "domains", "--check", "--json");
        var took = watch.Elapsed;
        var context = "\n" + result + dns.Transcript();
        Assert.That(result.ExitCode, Is.Zero, context);
        var data = JsonDocument.Parse(result.Stdout).RootElement;
        var good = Entry(data, "good.test");
        var bad = Entry(data, "bad.test");
        var slow = Entry(data, "slow.test");
        Assert.Multiple(() =>
        {
            Assert.That(Ok(good, "dkim") && Ok(good, "spf") && Ok(good, "dmarc"), Is.True, "good.test" + context);
            Assert.That(Detail(good, "spf"), Is.EqualTo($"authorises {HostAddress}"), context);
            Assert.That(Detail(bad, "dkim"), Is.EqualTo("no DKIM record at default._domainkey.bad.test"), context);
            Assert.That(Detail(bad, "spf"), Does.StartWith($"{HostAddress} not authorised (fail: "), context);
            Assert.That(Detail(bad, "dmarc"), Is.EqualTo("no DMARC record at _dmarc.bad.test"), context);
            Assert.That(Ok(bad, "dkim") || Ok(bad, "spf") || Ok(bad, "dmarc"), Is.False, context);
            foreach (var check in new[] { "dkim", "spf", "dmarc" })
            {
                Assert.That(Detail(slow, check), Does.StartWith("dns: timeout"), check + context);
            }

            // 3 s a try and one retry (6 s), the report bounded to 20 s, plus the CLI's start.
            Assert.That(took, Is.LessThan(TimeSpan.FromSeconds(30)), context);
        });

        var text = await CliAsync(s, "domains", "--check", "--user", TestUsers.Alice.Name);
        Assert.That(text.ExitCode, Is.Zero, text.ToString());
        var goodLine = text.Stdout.Split('\n').Single(l => l.StartsWith("good.test", StringComparison.Ordinal));
        Assert.That(goodLine, Does.Match($@"^good\.test +{TestUsers.Alice.Name} +OK +OK +OK$"), text.Stdout);
        Assert.That(text.Stdout, Does.Not.Contain("slow.test"), "--user filters");
    }

    [Test]
    public async Task User_lists_only_that_users_domains_and_no_lookup_happens_without_check()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var domains = s.Dir.Write("domains", $"{TestUsers.Alice.Name}: good.test bad.test\n{TestUsers.Bob.Name}: slow.test\n");
        var config = new DaemonConfig
        {
            // Nothing answers on port 9: a lookup would show as dns: timeout.
            Settings = new Dictionary<string, JsonNode?> { ["Domains.Source"] = "File", ["Domains.File"] = domains, ["Burn.DnsServer"] = "127.0.0.1:9" },
        };
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);

        var result = await CliAsync(s, "domains", "--user", TestUsers.Bob.Name, "--json");

        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        var data = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.That(data.GetProperty("user").GetString(), Is.EqualTo(TestUsers.Bob.Name));
        Assert.That(data.GetProperty("domains").EnumerateArray().Select(d => d.GetProperty("domain").GetString()), Is.EqualTo(new[] { "slow.test" }));
        Assert.That(Entry(data, "slow.test").GetProperty("spf").ValueKind, Is.EqualTo(JsonValueKind.Null), "no --check, no report");
    }
}
