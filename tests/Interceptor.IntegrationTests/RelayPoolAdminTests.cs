using System.Text.Json;
using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 15, the daemon's side of the relay pool, on the real daemon in a namespace: a real DNS server (dnsmasq) lists the
/// primary's egress address → it burns, the standby is promoted, the alert command runs, `relays` and `status` show it, a
/// restart keeps it and `relay restore` brings it back; a 127.255.255.254 answer is logged and alerted, never a burn; the
/// admin burns a relay and the host (Auto mode); a credentials file others may read stops the start. No login or
/// password ever shows in the daemon's output, `status`, `relays` or `--json`.
/// </summary>
[TestFixture]
[CancelAfter(240_000)]
public sealed class RelayPoolAdminTests
{
    private const string Zone = "zen.test";
    private const string Login = "site-everyone-4711";
    private const string Password = "Sup3r-S3cret-Pw-0815";

    /// <summary>relay1's egress 198.51.100.10 as the blocklist's query name.</summary>
    private const string Relay1Query = "10.100.51.198";

    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    /// <summary>Alerts.Command appending one line per event: its SMTPI_* variables, sorted, separated by '|'.</summary>
    private static string AlertLines(string path) => $"env | grep '^SMTPI_' | sort | tr '\\n' '|' >> '{path}'; echo >> '{path}'";

    private static DaemonConfig Config(TestDirectory dir, string alerts, string mode = "Smarthost", LocalDnsbl? dns = null, string? credentials = null)
    {
        var settings = new Dictionary<string, JsonNode?>
        {
            ["Relay.Mode"] = mode,
            ["Relay.Smarthosts"] = new JsonArray(
                new JsonObject { ["Name"] = "relay1", ["Host"] = "relay1.test", ["EgressAddress"] = "198.51.100.10" },
                new JsonObject { ["Name"] = "relay2", ["Host"] = "relay2.test", ["Role"] = "Standby", ["EgressAddress"] = "198.51.100.20" }),
            ["Relay.CredentialsFile"] = credentials ?? WriteCredentials(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite),
            ["Burn.DnsblZones"] = dns is null ? new JsonArray() : new JsonArray(Zone),
            ["Burn.DnsServer"] = dns is null ? "" : dns.EndPoint.ToString(),
            ["Burn.HostAddress"] = "203.0.113.5",
            ["Alerts.Command"] = AlertLines(alerts),
        };
        return new DaemonConfig { Settings = settings };
    }

    private static string WriteCredentials(TestDirectory dir, UnixFileMode mode)
    {
        var path = dir.Write("relay-credentials", $"# the daemon reads this as root\n* {Login} {Password}\n");
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private static Task<ProcessResult> CliAsync(Scenario s, params string[] arguments) =>
        s.Ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, .. arguments, "--config", s.Dir.PathOf("daemon-config.json")], TimeSpan.FromSeconds(60));

    private static async Task<JsonElement> JsonAsync(Scenario s, params string[] arguments)
    {
        var result = await CliAsync(s, [.. arguments, "--json"]);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        AssertNoSecret(result.Stdout + result.Stderr, string.Join(' ', arguments));
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    private static async Task<string> TextAsync(Scenario s, params string[] arguments)
    {
        var result = await CliAsync(s, arguments);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        AssertNoSecret(result.Stdout + result.Stderr, string.Join(' ', arguments));
        return result.Stdout;
    }

    private static void AssertNoSecret(string output, string where)
    {
        Assert.That(output, Does.Not.Contain(Login).And.Not.Contain(Password), $"{where} shows a relay credential");
    }

    private static string StateOf(JsonElement relays, string name) =>
        relays.GetProperty("relays").EnumerateArray().Single(r => r.GetProperty("name").GetString() == name).GetProperty("state").GetString()!;

    private static async Task<IReadOnlyList<Dictionary<string, string>>> WaitForAlertsAsync(string path, Func<IReadOnlyList<Dictionary<string, string>>, bool> done)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (true)
        {
            var lines = File.Exists(path) ? await File.ReadAllLinesAsync(path) : [];
            var alerts = lines.Where(l => l.Length > 0)
                .Select(l => l.Split('|', StringSplitOptions.RemoveEmptyEntries).Select(v => v.Split('=', 2)).Where(p => p.Length == 2)
                    .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal))
                .ToList();
            if (done(alerts) || DateTime.UtcNow > deadline)
            {
                return alerts;
            }

            await Task.Delay(100);
        }
    }

    private static async Task<DaemonLogLine?> WaitForLogAsync(DaemonProcess daemon, Func<DaemonLogLine, bool> match)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (DateTime.UtcNow < deadline)
        {
            if (daemon.LogLines().FirstOrDefault(match) is { } line)
            {
                return line;
            }

            await Task.Delay(100);
        }

        return null;
    }

    [Test]
    public async Task A_listed_primary_burns_the_standby_takes_over_a_restart_keeps_it_and_restore_brings_it_back()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var alerts = s.Dir.PathOf("alerts.txt");
        await using (var listing = await LocalDnsbl.StartAsync(Zone, new Dictionary<string, string> { [Relay1Query] = "127.0.0.2" }, ns: s.Ns))
        {
            await using (var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, alerts, dns: listing)))
            {
                var burned = await WaitForLogAsync(daemon, l => l.Message.StartsWith("relay relay1 burned", StringComparison.Ordinal));
                Assert.That(burned?.Message, Is.EqualTo("relay relay1 burned: DNSBL listed: zen.test 127.0.0.2"), daemon.Transcript() + listing.Transcript());
                var events = await WaitForAlertsAsync(alerts, a => a.Count >= 2);
                var burnAlert = events.FirstOrDefault(a => a.GetValueOrDefault("SMTPI_EVENT") == "relay-burned");
                Assert.That(burnAlert, Is.Not.Null, "alert for the burn\n" + string.Join("\n", events.Select(e => string.Join(" ", e))));
                Assert.That(burnAlert!["SMTPI_RELAY"], Is.EqualTo("relay1"));
                Assert.That(burnAlert["SMTPI_REASON"], Is.EqualTo("DNSBL listed: zen.test 127.0.0.2"));
                Assert.That(events.Any(a => a.GetValueOrDefault("SMTPI_EVENT") == "relay-promoted" && a["SMTPI_RELAY"] == "relay2"), Is.True, "alert for the promotion");

                var relays = await JsonAsync(s, "relays");
                Assert.That(StateOf(relays, "relay1"), Is.EqualTo("burned"));
                Assert.That(StateOf(relays, "relay2"), Is.EqualTo("in_rotation"));
                Assert.That(relays.GetProperty("relays")[1].GetProperty("lastDnsbl").GetString(), Is.EqualTo("listed: zen.test 127.0.0.2"));
                Assert.That(await TextAsync(s, "relays"), Does.Contain("relay1").And.Contain("burned"));
                Assert.That(await TextAsync(s, "status"), Does.Contain("relay relay1 (primary): burned since").And.Contain("relay relay2 (standby): in rotation"));
                var status = await JsonAsync(s, "status");
                Assert.That(status.GetProperty("relays").GetArrayLength(), Is.EqualTo(2));
                AssertNoSecret(daemon.Transcript(), "the daemon's log");
            }
        }

        // Restarted with a blocklist that lists nothing: the stored burn stands (21 days and 3 clean checks are far off).
        await using var clean = await LocalDnsbl.StartAsync(Zone, new Dictionary<string, string>(), ns: s.Ns);
        await using var restarted = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, alerts, dns: clean));
        Assert.That(await WaitForLogAsync(restarted, l => l.Message.StartsWith("DNSBL check of relay1", StringComparison.Ordinal)), Is.Not.Null, restarted.Transcript());
        var afterRestart = await JsonAsync(s, "relays");
        Assert.That(StateOf(afterRestart, "relay1"), Is.EqualTo("burned"), "a restart brings no burned relay back");
        Assert.That(afterRestart.GetProperty("relays").EnumerateArray().Single(r => r.GetProperty("name").GetString() == "relay1").GetProperty("reason").GetString(),
            Is.EqualTo("DNSBL listed: zen.test 127.0.0.2"));
        Assert.That(StateOf(afterRestart, "relay2"), Is.EqualTo("in_rotation"));

        var restore = await TextAsync(s, "relay", "restore", "relay1");
        Assert.That(restore, Does.StartWith("relay relay1 restored: in reserve"), "back in service: the reserve, as relay2 holds the one primary's place");
        var restored = await JsonAsync(s, "relays");
        Assert.That(StateOf(restored, "relay1"), Is.EqualTo("reserve"));
        var restoreAlerts = await WaitForAlertsAsync(alerts, a => a.Any(e => e.GetValueOrDefault("SMTPI_EVENT") == "relay-restored"));
        Assert.That(restoreAlerts.Any(e => e.GetValueOrDefault("SMTPI_EVENT") == "relay-restored" && e["SMTPI_RELAY"] == "relay1"), Is.True, "alert for the restore");
        AssertNoSecret(restarted.Transcript(), "the daemon's log");
    }

    [Test]
    public async Task A_127_255_255_254_answer_is_logged_and_alerted_never_a_burn()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var alerts = s.Dir.PathOf("alerts.txt");
        await using var refusing = await LocalDnsbl.StartAsync(Zone, new Dictionary<string, string> { [Relay1Query] = "127.255.255.254" }, ns: s.Ns);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, alerts, dns: refusing));

        var logged = await WaitForLogAsync(daemon, l => l.Message.StartsWith("DNSBL check of relay1", StringComparison.Ordinal));
        Assert.That(logged?.Message, Is.EqualTo("DNSBL check of relay1 (198.51.100.10): resolver error: zen.test 127.255.255.254; a resolver error, never counted as a listing"),
            daemon.Transcript() + refusing.Transcript());
        Assert.That(logged!.LogLevel, Is.EqualTo("Warning"));
        var events = await WaitForAlertsAsync(alerts, a => a.Count >= 1);
        Assert.That(events.Select(e => e.GetValueOrDefault("SMTPI_EVENT")), Is.EqualTo(new[] { "dnsbl-error" }));
        Assert.That(events[0]["SMTPI_RELAY"], Is.EqualTo("relay1"));
        var relays = await JsonAsync(s, "relays");
        Assert.That(StateOf(relays, "relay1"), Is.EqualTo("in_rotation"), "not a listing");
        Assert.That(StateOf(relays, "relay2"), Is.EqualTo("reserve"), "nothing promoted");
        Assert.That(daemon.LogLines().Where(l => l.Message.Contains("burned", StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public async Task The_admin_burns_a_relay_and_in_Auto_mode_the_host()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var alerts = s.Dir.PathOf("alerts.txt");
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, alerts, mode: "Auto"));

        var burn = await JsonAsync(s, "relay", "burn", "relay1", "--reason", "S3150 from outlook.com");
        Assert.That(burn.GetProperty("message").GetString(), Is.EqualTo("relay relay1 burned: by an admin: S3150 from outlook.com; relay2 promoted from the reserve"));
        Assert.That(burn.GetProperty("stored").GetBoolean(), Is.True);
        var host = await TextAsync(s, "host", "burn", "--reason", "Gmail unsolicited rate");
        Assert.That(host, Does.StartWith("the host burned: by an admin: Gmail unsolicited rate"));

        var relays = await JsonAsync(s, "relays");
        Assert.That(StateOf(relays, "relay1"), Is.EqualTo("burned"));
        Assert.That(StateOf(relays, "relay2"), Is.EqualTo("in_rotation"));
        Assert.That(relays.GetProperty("host").GetProperty("state").GetString(), Is.EqualTo("burned"));
        var events = await WaitForAlertsAsync(alerts, a => a.Count >= 3);
        Assert.That(events.Select(e => (e.GetValueOrDefault("SMTPI_EVENT"), e.GetValueOrDefault("SMTPI_RELAY"))),
            Is.SupersetOf(new[] { ("relay-burned", "relay1"), ("relay-promoted", "relay2"), ("host-burned", "host") }));
        Assert.That(events.Single(e => e.GetValueOrDefault("SMTPI_EVENT") == "host-burned")["SMTPI_REASON"], Is.EqualTo("by an admin: Gmail unsolicited rate"));

        var missing = await CliAsync(s, "relay", "burn", "relay9", "--reason", "x");
        Assert.That(missing.ExitCode, Is.EqualTo(2), missing.ToString());
        Assert.That(missing.Stderr, Does.Contain("no relay named \"relay9\" in Relay.Smarthosts (known: relay1, relay2)"));

        Assert.That(await TextAsync(s, "host", "restore"), Does.StartWith("the host restored: back in rotation"));
        Assert.That((await JsonAsync(s, "relays")).GetProperty("host").GetProperty("state").GetString(), Is.EqualTo("in_rotation"));
        AssertNoSecret(daemon.Transcript(), "the daemon's log");
    }

    [Test]
    public async Task A_credentials_file_others_may_read_stops_the_start_naming_file_and_mode()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var credentials = WriteCredentials(s.Dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var config = DaemonProcess.WriteConfig(s.Dir, Config(s.Dir, s.Dir.PathOf("alerts.txt"), credentials: credentials));

        var run = await s.Ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "run", "--config", config], TimeSpan.FromSeconds(60));

        Assert.That(run.ExitCode, Is.EqualTo(1), run.ToString());
        Assert.That(run.Stderr, Does.Contain($"Relay.CredentialsFile: {credentials}: mode 0644 lets others than the daemon's user read the relay logins (they may have already: change the relay logins as well); run chmod 600 {credentials}"));
        AssertNoSecret(run.Stdout + run.Stderr, "the refusal");
        var table = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);
        Assert.That(table.ExitCode, Is.Not.Zero, "nothing was installed\n" + table.Stdout);
    }

    [Test]
    public async Task A_relay_ca_file_that_cannot_be_read_is_named_by_check_config_and_stops_run_before_anything_is_installed()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var missingCa = s.Dir.PathOf("no-such-ca.pem");
        var config = Config(s.Dir, s.Dir.PathOf("alerts.txt"));
        var relays = (JsonArray)config.Settings["Relay.Smarthosts"]!;
        relays[0]!["CaFile"] = missingCa;
        var path = DaemonProcess.WriteConfig(s.Dir, config);
        var expected = $"Relay.Smarthosts[0].CaFile: {missingCa}: cannot read the CA certificates";

        var check = await DaemonProcess.RunVerbAsync(s.Ns, "check-config", path);
        var run = await s.Ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "run", "--config", path], TimeSpan.FromSeconds(60));

        Assert.That(check.ExitCode, Is.EqualTo(1), check.ToString());
        Assert.That(check.Stderr, Does.Contain(expected), check.ToString());
        Assert.That(run.ExitCode, Is.EqualTo(1), run.ToString());
        Assert.That(run.Stderr, Does.Contain(expected).And.Not.Contain("   at "), "a clear error, not a stack trace\n" + run);
        var table = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);
        Assert.That(table.ExitCode, Is.Not.Zero, "nothing was installed\n" + table.Stdout);
    }

    [Test]
    public async Task Check_config_names_a_credentials_file_others_may_read()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var credentials = WriteCredentials(s.Dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var path = DaemonProcess.WriteConfig(s.Dir, Config(s.Dir, s.Dir.PathOf("alerts.txt"), credentials: credentials));

        var check = await DaemonProcess.RunVerbAsync(s.Ns, "check-config", path);

        Assert.That(check.ExitCode, Is.EqualTo(1), check.ToString());
        Assert.That(check.Stderr, Does.Contain($"Relay.CredentialsFile: {credentials}: mode 0604"), check.ToString());
        AssertNoSecret(check.Stdout + check.Stderr, "check-config");
    }
}
