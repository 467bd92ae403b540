using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12.5: a customer's code opening and holding hundreds of SMTP and metrics connections, to run the daemon out
/// of file descriptors. The daemon runs under a low descriptor limit (prlimit) so the attack needs hundreds, not
/// tens of thousands, of connections.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class DescriptorExhaustionTests
{
    private const string MetricsListen = "127.0.0.1:9325";
    private const int VerifyInterval = 2;

    [Test]
    public async Task Hundreds_of_held_smtp_and_metrics_connections_meet_the_caps_and_the_daemon_survives_and_serves_once_they_go()
    {
        // Per-user cap far above the total one: as if the connections came from many users (or sub-UIDs). No
        // automatic suspension: the point is the descriptors, not the kernel refusing bob.
        var config = Config(
            ("Metrics.Listen", MetricsListen),
            // Bob may scrape here, or the kernel would refuse his metrics connections before the endpoint's caps see them.
            ("Metrics.ScraperUsers", new JsonArray(TestUsers.Bob.Name)),
            ("Limits.Default.Connections", 1000),
            ("Limits.Default.ConnectionsPerSecond", 0), // the kernel's rate limit would refuse most of the 400 at once
            ("Suspension.RefusalLimit", 0),
            ("Interception.VerifyIntervalSeconds", VerifyInterval)) with { DescriptorLimit = 512 };
        await using var s = await Scenario.StartAsync(config: config);
        var daemon = s.RequireDaemon;

        var hold = await s.Ns.RunAsUserAsync(TestUsers.Bob, Requirements.Python,
            ["-I", s.Dir.PathOf("hold_connections.py"), "--target", "127.0.0.2:25:400", "--target", MetricsListen + ":300", "--hold", "8"],
            TimeSpan.FromSeconds(90));
        var reportLine = hold.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        await TestContext.Out.WriteLineAsync("bob's connections: " + reportLine);
        Assert.That(daemon.Process.HasExited, Is.False, "the daemon died while bob held his connections" + hold.Describe() + s.Describe());
        Assert.That(reportLine, Is.Not.Null, "the holder printed no result\n" + hold.Describe() + s.Describe());
        var smtp = JsonNode.Parse(reportLine!)!["targets"]!["127.0.0.2:25"]!;
        int Greeted(string code) => smtp["greetings"]![code]?.GetValue<int>() ?? 0;

        var log = daemon.LogLines();
        Assert.Multiple(() =>
        {
            Assert.That(Greeted("220"), Is.GreaterThan(0), "some of bob's connections got a session\n" + reportLine);
            Assert.That(Greeted("421"), Is.GreaterThan(0), "those over the cap got 421\n" + reportLine);
            Assert.That(smtp["refusals"]!.AsArray().Select(r => r!.GetValue<string>()),
                Has.Some.Matches<string>(r => r.StartsWith("421 4.7.0 ", StringComparison.Ordinal) && r.Contains("Listen.MaxConnections", StringComparison.Ordinal)),
                "the 421 names the cause\n" + reportLine);
            Assert.That(log.Select(l => l.Message), Has.Some.Contains("connection cap").And.Contains("Listen.MaxConnections"),
                "the intercept listener's cap is logged" + s.Describe());
            Assert.That(log.Select(l => l.Message), Has.Some.Contains($"metrics: uid {TestUsers.Bob.Uid} holds 2 connections already"),
                "the metrics endpoint's share of a user is logged" + s.Describe());
            Assert.That(log.Where(l => l.LogLevel == "Critical").Select(l => l.Message), Is.Empty, s.Describe());
        });

        // Once bob let go: alice's mail is relayed and attributed to her at once.
        var clock = Stopwatch.StartNew();
        var sent = await SendAsync(s, TestUsers.Alice, "after-the-siege");
        AssertDelivered(sent, s.Describe());
        var transactions = await daemon.WaitForTransactionsAsync(1, TimeSpan.FromSeconds(5));
        Assert.That(transactions.Select(t => t.User), Has.Member(TestUsers.Alice.Name), s.Describe());
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"alice's message relayed {clock.Elapsed.TotalSeconds:F2} s after bob let go"));

        var get = await s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=10); print(r.status)"]);
        Assert.That(get.Stdout.Trim(), Is.EqualTo("200"), "/metrics answers again" + get.Describe() + s.Describe());

        // The watchdog's nft runs still work: a deleted table comes back.
        var before = await NftTable.ListAsync(s.Ns, "table", "inet", "smtp_interceptor");
        var delete = await s.Ns.RunAsync("nft", ["delete", "table", "inet", "smtp_interceptor"]);
        Assert.That(delete.Succeeded, Is.True, delete.Describe());
        clock.Restart();
        var restored = false;
        while (!restored && clock.Elapsed < TimeSpan.FromSeconds(VerifyInterval + 8))
        {
            await Task.Delay(200);
            restored = (await s.Ns.RunAsync("nft", ["list", "table", "inet", "smtp_interceptor"])).Succeeded;
        }

        Assert.That(restored, Is.True, $"the watchdog did not restore the deleted table within {VerifyInterval + 8} s\n{before}" + s.Describe());
        Assert.That(daemon.Process.HasExited, Is.False, s.Describe());
    }

    [Test]
    public async Task A_connection_cap_that_does_not_fit_in_the_descriptor_limit_stops_the_start_with_the_arithmetic()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var configPath = DaemonProcess.WriteConfig(s.Dir, Config(("Listen.MaxConnections", 5000)));
        // As DaemonProcess does: no inherited SMTPI_* variable may override (or, unknown, break) the test's config.
        var unset = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal))
            .SelectMany(k => new[] { "-u", k });
        var run = await s.Ns.RunAsync("env",
            [.. unset, Requirements.Require("prlimit"), "--nofile=1024:1024", DaemonProcess.DotnetHost, DaemonProcess.AssemblyPath, "run", "--config", configPath],
            TimeSpan.FromSeconds(60));
        Assert.Multiple(() =>
        {
            Assert.That(run.ExitCode, Is.EqualTo(3), run.Describe());
            Assert.That(run.Stdout + run.Stderr, Does.Contain("Listen.MaxConnections 5000 needs").And.Contain("the limit is 1024").And.Contain("LimitNOFILE"), run.Describe());
        });
        var tables = await s.Ns.RunAsync("nft", ["list", "tables"]);
        Assert.That(tables.Stdout, Does.Not.Contain("smtp_interceptor"), "refused before any rule was installed\n" + tables.Describe());
    }

    /// <summary>
    /// Issue 19.3: with idle clients giving their upstream back (Relay.IdleClientReleaseSeconds), a session costs one
    /// descriptor and upstream connections are capped on their own. Under a low limit, more idle sessions than there
    /// are upstream slots: each is greeted (those that found the cap full once an idle one gave its slot back), the MX
    /// never has more connections from the daemon than the cap, the daemon's descriptors stay below the limit, and
    /// mail goes through afterwards.
    /// </summary>
    [Test]
    public async Task More_idle_sessions_than_upstream_slots_are_all_greeted_and_the_upstream_cap_holds()
    {
        await using var s = await Scenario.StartAsync(config: SharedUpstreamsConfig());
        var daemon = s.RequireDaemon;
        var pid = daemon.Process.ProcessId;
        var (plan, sessions, upstreams) = SharedUpstreamsPlan(daemon);
        var idle = sessions - 4;
        Assert.That(idle, Is.GreaterThan(upstreams + 10), "the plan leaves more sessions than upstream slots: " + plan);

        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() => SampleAsync(pid, IPEndPoint.Parse(Mx), stop.Token));
        var run = await s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", s.Dir.PathOf("idle.py"), "--server", Mx, "--count", idle.ToString(CultureInfo.InvariantCulture), "--timeout", "30", "--hold-seconds", "3"],
            TimeSpan.FromSeconds(90));
        await stop.CancelAsync();
        var (maxUpstreams, maxDescriptors) = await sampler;
        var reportLine = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        var connects = s.RequireMx.Events().Count(e => e.GetProperty("kind").GetString() == "connect");
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"{plan}\nidle sessions: {reportLine}; at most {maxUpstreams} upstream connections open at once (cap {upstreams}), {connects} made in all; at most {maxDescriptors} descriptors open (limit {SharedLimit})"));
        Assert.That(reportLine, Is.Not.Null, "idle.py printed no result" + run.Describe() + s.Describe());
        var report = JsonNode.Parse(reportLine!)!;
        Assert.Multiple(() =>
        {
            Assert.That(report["open"]!.GetValue<int>(), Is.EqualTo(idle), "every session greeted and answered EHLO\n" + reportLine);
            Assert.That(report["failures"]!.GetValue<int>(), Is.Zero, reportLine);
            Assert.That(maxUpstreams, Is.LessThanOrEqualTo(upstreams), "upstream connections never above the budget's cap");
            Assert.That(connects, Is.GreaterThan(upstreams), "more sessions than slots were served: upstreams were given back and taken again");
            Assert.That(maxDescriptors, Is.LessThan(SharedLimit), "the daemon's descriptors stayed below its limit");
            Assert.That(daemon.Process.HasExited, Is.False, s.Describe());
            Assert.That(daemon.LogLines().Where(l => l.LogLevel == "Critical").Select(l => l.Message), Is.Empty, s.Describe());
        });

        var sent = await SendAsync(s, TestUsers.Alice, "after-the-idle-crowd");
        AssertDelivered(sent, s.Describe());
    }

    [Test]
    public async Task Sessions_finding_every_upstream_slot_held_in_a_transaction_are_told_421_naming_the_cap_after_the_connect_timeout()
    {
        await using var s = await Scenario.StartAsync(config: SharedUpstreamsConfig() with { ConnectTimeoutSeconds = 2 });
        var (plan, _, upstreams) = SharedUpstreamsPlan(s.RequireDaemon);

        // Alice's script takes every upstream slot with sessions inside a transaction (never idle between transactions,
        // so never given back), then opens a few more and reads their greetings.
        var script = s.Dir.Write("hold_transactions.py", HoldTransactionsScript);
        var run = await s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", script, NetworkNamespace.MxAddress4, "25", upstreams.ToString(CultureInfo.InvariantCulture), "3"], TimeSpan.FromSeconds(90));
        var reportLine = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        await TestContext.Out.WriteLineAsync(plan + "\n" + reportLine);
        Assert.That(reportLine, Is.Not.Null, "the script printed no result" + run.Describe() + s.Describe());
        var report = JsonNode.Parse(reportLine!)!;
        Assert.Multiple(() =>
        {
            Assert.That(report["held"]!.GetValue<int>(), Is.EqualTo(upstreams), reportLine);
            Assert.That(report["errors"]!.AsArray(), Is.Empty, "every held session got its upstream and 250 to MAIL\n" + reportLine);
            Assert.That(report["extra"]!.AsArray().Select(g => g!.GetValue<string>()),
                Has.All.StartsWith("421 4.3.2 ").And.All.Contains($"no descriptor free for another upstream connection ({upstreams} open"), reportLine);
            Assert.That(report["waited_s"]!.GetValue<double>(), Is.GreaterThanOrEqualTo(1.5), "refused only after waiting the connect timeout\n" + reportLine);
            Assert.That(s.RequireMx.Events().Count(e => e.GetProperty("kind").GetString() == "connect"), Is.EqualTo(upstreams), "the refused ones never reached the MX");
        });

        // Once she let go, mail goes through.
        AssertDelivered(await SendAsync(s, TestUsers.Alice, "after-the-held-transactions"), s.Describe());
    }

    private const int SharedLimit = 400;

    /// <summary>The daemon under a limit too low for two descriptors a session, idle clients releasing after 1 s.</summary>
    private static DaemonConfig SharedUpstreamsConfig() => Config(
        ("Relay.IdleClientReleaseSeconds", 1),
        ("Limits.Default.Connections", 1000),
        ("Limits.Default.ConnectionsPerSecond", 0),
        ("Suspension.RefusalLimit", 0)) with { DescriptorLimit = SharedLimit };

    /// <summary>The start-up line and the caps it names; the warning says that not every session has an upstream.</summary>
    private static (string Plan, int Sessions, int Upstreams) SharedUpstreamsPlan(DaemonProcess daemon)
    {
        var messages = daemon.LogLines().Select(l => l.Message).ToList();
        var plan = messages.First(m => m.StartsWith("file descriptors: limit", StringComparison.Ordinal));
        var planned = Regex.Match(plan, @"up to (\d+) SMTP sessions \(Listen.MaxConnections\) and (\d+) upstream connections");
        Assert.That(planned.Success, Is.True, "the start-up line names the upstream cap: " + plan);
        var upstreams = int.Parse(planned.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.That(messages, Has.Some.Contains($"at most {upstreams} of them with an upstream connection at once"), string.Join("\n", messages));
        return (plan, int.Parse(planned.Groups[1].Value, CultureInfo.InvariantCulture), upstreams);
    }

    /// <summary>HOST PORT HELD EXTRA: HELD sessions left inside a transaction (after MAIL), then EXTRA whose greetings are read.</summary>
    private const string HoldTransactionsScript = """
        import json, socket, sys, time

        def reply(f):
            while True:
                line = f.readline().decode("latin-1").rstrip("\r\n")
                if len(line) < 4 or line[3] != "-":
                    return line

        host, port, held_count, extra_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        held, errors, extra = [], [], []
        for _ in range(held_count):
            s = socket.create_connection((host, port), timeout=30)
            f = s.makefile("rb")
            steps = [reply(f)]
            for command in (b"EHLO held.test\r\n", b"MAIL FROM:<held@client.test>\r\n"):
                s.sendall(command)
                steps.append(reply(f))
            if not steps[-1].startswith("250"):
                errors.append(steps)
            held.append(s)
        for _ in range(extra_count):
            s = socket.create_connection((host, port), timeout=30)
            extra.append((s, s.makefile("rb")))
        begin = time.time()
        greetings = [reply(f) for _, f in extra]
        print(json.dumps({"held": len(held), "errors": errors, "extra": greetings, "waited_s": round(time.time() - begin, 2)}), flush=True)
        for s in held + [s for s, _ in extra]:
            s.close()
        """;

    /// <summary>
    /// Polls, until cancelled, the most TCP connections the daemon had established to <paramref name="upstream"/> at
    /// once (its socket descriptors matched against the namespace's /proc/net/tcp; the clients' own sockets to the MX
    /// address, redirected to the daemon, are not the daemon's) and the most descriptors it had open.
    /// </summary>
    private static async Task<(int Upstreams, int Descriptors)> SampleAsync(int pid, IPEndPoint upstream, CancellationToken stop)
    {
        var bytes = upstream.Address.GetAddressBytes();
        Array.Reverse(bytes);
        var remote = Convert.ToHexString(bytes) + ":" + upstream.Port.ToString("X4", CultureInfo.InvariantCulture);
        int maxUpstreams = 0, maxDescriptors = 0;
        while (!stop.IsCancellationRequested)
        {
            var inodes = new HashSet<string>(StringComparer.Ordinal);
            var descriptors = 0;
            foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                descriptors++;
                var target = new FileInfo(fd).LinkTarget;
                if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal))
                {
                    inodes.Add(target[8..^1]);
                }
            }

            // sl local rem st ... inode: state 01 is ESTABLISHED.
            var upstreams = File.ReadLines($"/proc/{pid}/net/tcp").Skip(1)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Count(f => f.Length > 9 && f[2] == remote && f[3] == "01" && inodes.Contains(f[9]));
            maxUpstreams = Math.Max(maxUpstreams, upstreams);
            maxDescriptors = Math.Max(maxDescriptors, descriptors);
            try
            {
                await Task.Delay(50, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return (maxUpstreams, maxDescriptors);
    }
}
