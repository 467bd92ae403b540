namespace Interceptor.IntegrationTests;

/// <summary>
/// Fail closed: stopping the daemon leaves its nft table in place, so intercepted users get
/// "connection refused" instead of a direct path to the MX; only `remove-rules` opens it again.
/// Also the one-shot verbs that admins and packaging rely on.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class FailClosedTests
{
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Stopped_daemon_keeps_the_table_and_intercepted_connections_are_refused()
    {
        await using var s = await Scenario.StartAsync();

        var exitCode = await s.RequireDaemon.StopAsync();

        Assert.That(exitCode, Is.EqualTo(0), "SIGTERM must stop the daemon cleanly within 20 s" + s.Describe());
        var dialog = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "after-stop"))));
        var table = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);
        Assert.Multiple(() =>
        {
            Assert.That(dialog.ConnectError, Does.Contain("ConnectionRefused"), "alice's connect must be refused\n" + dialog.Describe());
            Assert.That(s.RequireMx.ConnectionCount, Is.Zero, "nothing may reach the MX" + s.Describe());
            Assert.That(table.Succeeded, Is.True, "the table must survive SIGTERM\n" + table.Describe());
            Assert.That(table.Stdout, Does.Contain("table inet smtp_interceptor"), table.Describe());
        });

        // The exempt MTA (root) is not locked out by the closed door.
        var root = await Clients.SwaksAsync(s.Ns, null, s.Dir, "127.0.0.2:25", "root@client.test", To, TestMessage.Small("root@client.test", To, "root-after-stop"));
        Assert.That(root.Succeeded, Is.True, root.Describe() + s.Describe());
    }

    [Test]
    public async Task Restarted_daemon_takes_over_its_existing_table_and_relays_again()
    {
        await using var s = await Scenario.StartAsync();
        var before = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);
        await s.RequireDaemon.StopAsync();

        // As systemd would restart it: same config, the table from the first run still in place.
        await using var second = await DaemonProcess.StartAsync(s.Ns, s.Dir);
        var after = await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"]);
        var message = TestMessage.Small(From, To, "after-restart");
        var result = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:25", From, [To], message);

        Assert.That(result.Succeeded, Is.True, result.Describe() + "\n" + second.Transcript());
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), TestUsers.Alice, message, "\n" + second.Transcript());
        // Replaced atomically, not appended to: the same number of rules as after the first start.
        Assert.That(CountRules(after.Stdout), Is.EqualTo(CountRules(before.Stdout)), $"before:\n{before.Stdout}\nafter:\n{after.Stdout}");
    }

    [Test]
    public async Task Remove_rules_deletes_the_table_and_traffic_flows_directly_again()
    {
        await using var s = await Scenario.StartAsync();
        await s.RequireDaemon.StopAsync();

        var remove = await DaemonProcess.RunVerbAsync(s.Ns, "remove-rules", s.RequireDaemon.ConfigPath);
        var table = await s.Ns.RunAsync("nft", ["list", "tables"]);
        Assert.Multiple(() =>
        {
            Assert.That(remove.Succeeded, Is.True, remove.Describe());
            Assert.That(table.Stdout, Does.Not.Contain("smtp_interceptor"), table.Describe());
        });

        var message = TestMessage.Small(From, To, "after-remove");
        var result = await Clients.SwaksAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:25", From, To, message);
        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), s.Describe());
        TestMessage.AssertSameBytes(message, messages[0].Bytes, " (direct, no trace header)");
    }

    private static int CountRules(string ruleset) =>
        ruleset.Split('\n').Count(l => l.Contains("redirect", StringComparison.Ordinal) || l.Contains("accept", StringComparison.Ordinal) || l.Contains("return", StringComparison.Ordinal));

    [Test]
    public async Task Rules_prints_the_ruleset_without_installing_it()
    {
        await using var ns = await NetworkNamespace.CreateAsync();
        using var dir = new TestDirectory();
        var config = DaemonProcess.WriteConfig(dir, new DaemonConfig());

        var rules = await DaemonProcess.RunVerbAsync(ns, "rules", config);
        var tables = await ns.RunAsync("nft", ["list", "tables"]);

        Assert.Multiple(() =>
        {
            Assert.That(rules.Succeeded, Is.True, rules.Describe());
            Assert.That(rules.Stdout, Does.Contain("smtp_interceptor"), rules.Describe());
            Assert.That(rules.Stdout, Does.Contain("redirect").IgnoreCase, rules.Describe());
            Assert.That(rules.Stdout, Does.Contain($"redirect to :{new DaemonConfig().ListenPort} "), rules.Describe());
            Assert.That(rules.Stderr, Is.Empty, "a privileged listener port: no lockdown warning\n" + rules.Describe());
            Assert.That(tables.Stdout, Does.Not.Contain("smtp_interceptor"), "rules only prints\n" + tables.Describe());
        });
    }

    [Test]
    public async Task Check_config_accepts_the_test_config_and_an_empty_one_and_rejects_a_bad_key()
    {
        await using var ns = await NetworkNamespace.CreateAsync();
        using var dir = new TestDirectory();
        var good = DaemonProcess.WriteConfig(dir, new DaemonConfig());
        var empty = dir.Write("empty.json", "{}");
        var bad = dir.Write("bad.json", """{ "Listen": { "Port": 70000 } }""");

        var goodResult = await DaemonProcess.RunVerbAsync(ns, "check-config", good);
        var emptyResult = await DaemonProcess.RunVerbAsync(ns, "check-config", empty);
        var badResult = await DaemonProcess.RunVerbAsync(ns, "check-config", bad);

        Assert.Multiple(() =>
        {
            Assert.That(goodResult.ExitCode, Is.EqualTo(0), goodResult.Describe());
            Assert.That(emptyResult.ExitCode, Is.EqualTo(0), "an empty {} config must be valid\n" + emptyResult.Describe());
            Assert.That(badResult.ExitCode, Is.EqualTo(1), badResult.Describe());
            Assert.That(badResult.Stdout + badResult.Stderr, Does.Contain("Port"), "the message names the bad key\n" + badResult.Describe());
        });
    }
}
