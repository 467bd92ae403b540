using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12.1: a local user must never receive redirected connections — not while the daemon is down, not while it
/// restarts, not when the listener port is one any user may bind (a configured unprivileged port, or a namespace whose
/// net.ipv4.ip_unprivileged_port_start was lowered). Where the daemon cannot own its port, port 25 is refused
/// (the lockdown table) instead of redirected to whoever holds it.
/// </summary>
[TestFixture]
[CancelAfter(240_000)]
public sealed class ListenerTakeoverTests
{
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private const string Sysctl = "net.ipv4.ip_unprivileged_port_start";

    [Test]
    public async Task Squatter_looping_bind_never_gets_the_listener_port_while_the_daemon_is_killed_and_restarted()
    {
        var config = new DaemonConfig();
        await using var s = await Scenario.StartAsync(config: config);
        await using var squatter = await PortSquatter.StartAsync(s.Ns, s.Dir, TestUsers.Bob, config.ListenPort);
        await Task.Delay(300);

        // SIGKILL: no chance to clean up, as after a crash or the systemd watchdog's kill.
        await s.RequireDaemon.Process.SignalAsync("KILL");
        Assert.That(await s.RequireDaemon.Process.WaitForExitAsync(TimeSpan.FromSeconds(10)), Is.True, "SIGKILL did not end the daemon");
        await Task.Delay(1000);
        var whileDown = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        Assert.That(whileDown.Refused, Is.True,
            $"while the daemon is down alice's port-25 connection must be refused, not handed to bob's socket: {whileDown}\n{squatter.Transcript()}");

        await using var restarted = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);
        var message = TestMessage.Small(From, To, "after-sigkill");
        var sent = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, $"{NetworkNamespace.MxAddress4}:25", From, [To], message);
        var summary = await squatter.StopAsync();

        await TestContext.Out.WriteLineAsync($"squatter (bob) on port {config.ListenPort}: {summary}");
        Assert.Multiple(() =>
        {
            Assert.That(summary.Bound, Is.Empty, $"bob must never bind the listener port: {summary}");
            Assert.That(summary.Accepted, Is.Empty, $"no connection may ever reach bob's socket: {summary}");
            Assert.That(summary.Count("EACCES"), Is.GreaterThan(100), $"bob's bind() must have been refused by the kernel (EACCES), many times: {summary}");
            Assert.That(sent.Succeeded, Is.True, sent.Describe() + "\n" + restarted.Transcript());
        });
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), TestUsers.Alice, message, "\n" + restarted.Transcript());
        var transactions = await restarted.WaitForTransactionsAsync(1);
        Assert.That(transactions.Select(t => t.Uid), Is.EqualTo(new uint?[] { TestUsers.Alice.Uid }), restarted.Transcript());
    }

    [Test]
    public async Task Unprivileged_listen_port_is_refused_at_start_and_the_boot_table_refuses_instead_of_redirecting()
    {
        var config = new DaemonConfig { ListenPort = 10025 };
        await using var s = await Scenario.StartAsync(config: config, startDaemon: false);
        await using var squatter = await PortSquatter.StartAsync(s.Ns, s.Dir, TestUsers.Bob, config.ListenPort, hold: true);

        await AssertLockedDownAsync(s, squatter, config, expectedExit: 1, "port 10025", "1024");
    }

    [Test]
    public async Task Lowered_unprivileged_port_start_in_a_container_is_refused_and_the_boot_table_refuses()
    {
        var config = new DaemonConfig();
        await using var s = await Scenario.StartAsync(config: config, startDaemon: false);
        var lowered = await s.Ns.RunAsync("sysctl", ["-w", Sysctl + "=0"]);
        Assert.That(lowered.Succeeded, Is.True, lowered.Describe());
        await using var squatter = await PortSquatter.StartAsync(s.Ns, s.Dir, TestUsers.Bob, config.ListenPort, hold: true);

        await AssertLockedDownAsync(s, squatter, config, expectedExit: 1, $"port {config.ListenPort}", "is 0");
    }

    [Test]
    public async Task Sysctl_lowered_under_a_running_daemon_locks_port_25_down_and_raising_it_restores_the_redirect()
    {
        var alerts = AlertFileConfig.NewPath();
        await using var s = await Scenario.StartAsync(config: new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?> { ["Interception.VerifyIntervalSeconds"] = 1 },
        }.WithAlertFile(alerts));
        var daemon = s.RequireDaemon;
        var before = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, $"{NetworkNamespace.MxAddress4}:25", From, [To], TestMessage.Small(From, To, "before"));
        Assert.That(before.Succeeded, Is.True, before.Describe() + s.Describe());

        await s.Ns.RunAsync("sysctl", ["-w", Sysctl + "=0"]);
        var locked = await daemon.Process.WaitForLineAsync(l => l.Contains("lockdown", StringComparison.OrdinalIgnoreCase) && l.Contains(Sysctl, StringComparison.Ordinal), TimeSpan.FromSeconds(15));
        Assert.That(locked, Is.Not.Null, "the watchdog must notice the lowered sysctl and lock down" + s.Describe());
        var duringLockdown = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        var table = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);

        await s.Ns.RunAsync("sysctl", ["-w", Sysctl + "=1024"]);
        var lifted = await daemon.Process.WaitForLineAsync(l => l.Contains("lockdown lifted", StringComparison.OrdinalIgnoreCase), TimeSpan.FromSeconds(15));
        var after = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, $"{NetworkNamespace.MxAddress4}:25", From, [To], TestMessage.Small(From, To, "after"));
        var alertText = await WaitForFileAsync(alerts, 2);

        Assert.Multiple(() =>
        {
            Assert.That(duringLockdown.Refused, Is.True, $"during the lockdown alice's port-25 connection is refused: {duringLockdown}");
            Assert.That(table.Stdout, Does.Not.Contain("redirect to"), "the lockdown table has no redirect\n" + table.Stdout);
            Assert.That(lifted, Is.Not.Null, "the normal table comes back once the sysctl is safe again" + s.Describe());
            Assert.That(after.Succeeded, Is.True, "alice relays again after the lockdown\n" + after.Describe() + s.Describe());
            Assert.That(alertText, Does.Contain("listener|").And.Contain(Sysctl), "Alerts.Command ran for the lockdown\n" + alertText);
        });
    }

    // The boot sequence of the package: the rules unit pipes `rules` into nft, then the daemon starts. Neither may leave a
    // redirect to a port bob holds: alice's connection is refused, bob's socket sees nothing, the daemon says why.
    private static async Task AssertLockedDownAsync(Scenario s, PortSquatter squatter, DaemonConfig config, int expectedExit, params string[] named)
    {
        var alerts = AlertFileConfig.NewPath();
        var configPath = DaemonProcess.WriteConfig(s.Dir, config.WithAlertFile(alerts));
        var boot = await s.Ns.RunAsync("bash", ["-o", "pipefail", "-c",
            $"'{DaemonProcess.DotnetHost}' '{DaemonProcess.AssemblyPath}' rules --config '{configPath}' | nft -f -"], TimeSpan.FromSeconds(60));
        var bootProbe = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        var check = await DaemonProcess.RunVerbAsync(s.Ns, "check-config", configPath);

        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal))
            .ToDictionary(k => k, _ => (string?)null);
        await using var daemon = s.Ns.StartBackground("daemon", DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "run", "--config", configPath], environment);
        var exited = await daemon.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var probe = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        var table = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);
        var summary = await squatter.StopAsync();
        var alertText = await WaitForFileAsync(alerts, 1);
        var transcript = daemon.Transcript();

        Assert.Multiple(() =>
        {
            Assert.That(boot.Succeeded, Is.True, "the boot-time pipe must load a table, not fail (a failure would leave port 25 open)\n" + boot.Describe());
            Assert.That(boot.Stderr, Does.Contain(Sysctl), "the rules verb says why it prints the lockdown form\n" + boot.Describe());
            Assert.That(bootProbe.Refused, Is.True, $"after boot, before the daemon: alice is refused, not handed to bob: {bootProbe}");
            Assert.That(check.ExitCode, Is.EqualTo(1), "check-config reports the unsafe port\n" + check.Describe());
            Assert.That(check.Stderr, Does.Contain(Sysctl), check.Describe());
            Assert.That(exited, Is.True, "the daemon must refuse to run\n" + transcript);
            Assert.That(daemon.ExitCode, Is.EqualTo(expectedExit), transcript);
            Assert.That(transcript, Does.Contain(Sysctl), "the error names the sysctl\n" + transcript);
            foreach (var text in named)
            {
                Assert.That(transcript, Does.Contain(text), transcript);
            }

            Assert.That(probe.Refused, Is.True, $"after the refused start: alice is refused, not handed to bob: {probe}");
            Assert.That(table.Stdout, Does.Not.Contain("redirect to"), "the lockdown table has no redirect\n" + table.Stdout);
            Assert.That(summary.Accepted, Is.Empty, $"no connection may reach bob's socket: {summary}");
            Assert.That(s.RequireMx.ConnectionCount, Is.Zero, "nothing gets out directly either" + s.Describe());
            Assert.That(alertText, Does.Contain("listener|"), "Alerts.Command ran for the lockdown\n" + alertText);
        });
    }

    private static async Task<string> WaitForFileAsync(string path, int lines)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(path) && (await File.ReadAllLinesAsync(path)).Length >= lines)
            {
                break;
            }

            await Task.Delay(100);
        }

        var text = File.Exists(path) ? await File.ReadAllTextAsync(path) : "(no alert file)";
        File.Delete(path);
        return text;
    }
}

internal static class AlertFileConfig
{
    public static string NewPath() => Path.Combine(Path.GetTempPath(), $"smtpi-alerts-{Guid.NewGuid():N}.txt");

    /// <summary>Alerts.Command appends "SMTPI_SOURCE|SMTPI_REASON" to <paramref name="path"/> (the daemon runs as root).</summary>
    public static DaemonConfig WithAlertFile(this DaemonConfig config, string path) => config with
    {
        Settings = new Dictionary<string, JsonNode?>(config.Settings)
        {
            ["Alerts.Command"] = $"echo \"$SMTPI_SOURCE|$SMTPI_REASON\" >> {path}",
        },
    };
}
