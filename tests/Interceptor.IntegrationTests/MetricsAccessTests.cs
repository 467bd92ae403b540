using System.Globalization;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The metrics endpoint listens on loopback, where every local user can connect. The kernel now lets only root and
/// Metrics.ScraperUsers reach it (a rule of the daemon's table): a customer's connect flood, her sub-UIDs' too, is reset
/// before the endpoint's queues see it, and the scraper is answered. Among the users allowed, each may hold two of the
/// endpoint's connections (a proxy's web server user, a second monitoring agent).
/// </summary>
[TestFixture]
[NonParallelizable] // two tests add lines to /etc/subuid, which every other running daemon's rules follow
[CancelAfter(120_000)]
public sealed class MetricsAccessTests
{
    private const string MetricsListen = "127.0.0.1:9326";
    private const string RefusalRule = "Anyone else's connection to the metrics endpoint";
    private const string SynAckDropRule = "Any other local SYN-ACK from the metrics endpoint's port";
    private const uint SubUidRangeStart = 1_920_000_000;
    private const int SubUidRangeCount = 1000;
    private const int Flood = 300;
    private const uint SweptSubUid = 1_921_000_007;

    [Test]
    public async Task A_customer_and_her_sub_uids_are_refused_by_the_kernel_and_the_scraper_is_answered()
    {
        Requirements.Require("newuidmap");
        using var line = await SubordinateUidLine.AddAsync(
            $"{TestUsers.Alice.Name}:{SubUidRangeStart}:{SubUidRangeCount.ToString(CultureInfo.InvariantCulture)}");
        await using var s = await Scenario.StartAsync(config: Config(("Metrics.Listen", MetricsListen)));
        var daemon = s.RequireDaemon;
        var holder = s.Dir.PathOf("hold_connections.py");
        var before = await NftTable.RuleCounterAsync(s.Ns, RefusalRule);

        // Alice opens 300 as fast as she can, and as one of her sub-UIDs 300 more, while the scraper (root) asks.
        var own = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", holder, "--target", $"{MetricsListen}:{Flood}", "--hold", "3"], TimeSpan.FromSeconds(30));
        var sub = s.Ns.RunAsUserAsync(TestUsers.Alice, "unshare",
            ["--user", $"--map-users={SubUidRangeStart},0,{SubUidRangeCount}", "--setuid", "0",
                Requirements.Python, "-I", holder, "--target", $"{MetricsListen}:{Flood}", "--hold", "3"],
            TimeSpan.FromSeconds(30));
        var scrape = await s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=5); print(r.status)"]);
        var (ownRun, subRun) = (await own, await sub);
        var ownReport = Report(ownRun.Stdout);
        var subReport = Report(subRun.Stdout);
        var refused = await NftTable.RuleCounterAsync(s.Ns, RefusalRule) - before;
        await TestContext.Out.WriteLineAsync($"alice: {ownReport.ToJsonString()}; her sub-UID: {subReport.ToJsonString()}; refused by the kernel: {refused}");

        Assert.Multiple(() =>
        {
            Assert.That(scrape.Stdout.Trim(), Is.EqualTo("200"), "the scraper was answered during the flood" + scrape.Describe() + s.Describe());
            Assert.That(ownReport["errors"]?["ConnectionRefusedError"]?.GetValue<int>(), Is.EqualTo(Flood), "every one of hers reset\n" + ownRun.Describe());
            Assert.That(subReport["errors"]?["ConnectionRefusedError"]?.GetValue<int>(), Is.EqualTo(Flood), "her sub-UID's too\n" + subRun.Describe());
            Assert.That(refused, Is.EqualTo(2 * Flood), "counted by the refusal's counter, the scraper's connection not among them");
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.None.Contains("connections already").And.None.Contains("connection cap"),
                "the endpoint never saw them" + s.Describe());
        });
    }

    [Test]
    public async Task Among_the_scraper_users_each_holds_two_connections_and_root_is_still_answered()
    {
        // Alice and bob scrape too (two agents); each holds at most two. Nobody is no scraper: the kernel refuses her.
        await using var s = await Scenario.StartAsync(config: Config(
            ("Metrics.Listen", MetricsListen),
            ("Metrics.ScraperUsers", new JsonArray(TestUsers.Alice.Name, TestUsers.Bob.Name))));
        var daemon = s.RequireDaemon;
        string[] Hold(double seconds) => ["-I", s.Dir.PathOf("hold_connections.py"), "--target", MetricsListen + ":8", "--hold", seconds.ToString(CultureInfo.InvariantCulture)];
        var holders = new[] { TestUsers.Alice, TestUsers.Bob, TestUsers.Nobody }.Select(u => s.Ns.RunAsUserAsync(u, Requirements.Python, Hold(4), TimeSpan.FromSeconds(30))).ToList();
        await Task.Delay(1000);

        var scrape = await s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=5); print(r.status)"]);
        var reports = new List<JsonNode>();
        foreach (var holder in holders)
        {
            reports.Add(Report((await holder).Stdout));
        }

        await TestContext.Out.WriteLineAsync($"alice, bob, nobody: {string.Join("; ", reports.Select(h => h.ToJsonString()))}");
        Assert.Multiple(() =>
        {
            Assert.That(reports.Take(2).Select(r => r["greetings"]?["none"]?.GetValue<int>()), Is.EqualTo(new int?[] { 2, 2 }), "each scraper user held her share");
            Assert.That(reports.Take(2).Select(r => r["greetings"]?["closed"]?.GetValue<int>()), Is.EqualTo(new int?[] { 6, 6 }), "the six over it were closed at once");
            Assert.That(reports[2]["errors"]?["ConnectionRefusedError"]?.GetValue<int>(), Is.EqualTo(8), "nobody is refused by the kernel");
            Assert.That(scrape.Stdout.Trim(), Is.EqualTo("200"), "root was answered" + scrape.Describe() + s.Describe());
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.Some.Contains(" holds 2 connections already"), s.Describe());
        });
    }

    [Test]
    public async Task A_customers_listener_on_the_metrics_port_is_closed_at_start_and_one_she_opens_later_on_the_other_family_cannot_answer()
    {
        // Alice listens on the (unprivileged) metrics port before the daemon starts, as she could during a restart, and
        // answers whoever connects with figures of her own. The sweep after the install closes her listener, so the
        // endpoint listens; she then listens on [::1] at the same port, where a scraper aimed at "localhost" tries first.
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var (host, port) = (MetricsListen.Split(':')[0], MetricsListen.Split(':')[1]);
        var first = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python, ["-I", "-c", Squatter(host, port)], TimeSpan.FromSeconds(30));
        await Task.Delay(1000);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(("Metrics.Listen", MetricsListen)));
        var swept = await Poll.UntilAsync(() => daemon.LogLines().Any(l => l.Message.StartsWith("metrics: closed 1 listener,", StringComparison.Ordinal)), TimeSpan.FromSeconds(10));
        var ours = await ScrapeUntilAnsweredAsync(s, MetricsListen);

        var later = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python, ["-I", "-c", Squatter("::1", port)], TimeSpan.FromSeconds(30));
        await Task.Delay(1000);

        // Her SYN-ACKs are dropped, and with her backlog of 0 the second scrape meets a syncookie SYN-ACK, which has no
        // owner and is dropped too.
        string[] scrapeHers = ["-I", "-c", $"import urllib.request\ntry: r = urllib.request.urlopen('http://[::1]:{port}/metrics', timeout=2); print(r.status, r.read())\nexcept Exception as e: print('failed', type(e).__name__)"];
        var during = await s.Ns.RunAsync(Requirements.Python, scrapeHers);
        var cookie = await s.Ns.RunAsync(Requirements.Python, scrapeHers);
        var dropped = await NftTable.RuleCounterAsync(s.Ns, SynAckDropRule);
        var sent = await SendAsync(s, TestUsers.Bob, "metrics-port-held");
        AssertDelivered(sent, daemon.Transcript());
        var (closed, held) = (await first, await later);

        Assert.Multiple(() =>
        {
            Assert.That(swept, Is.True, "her listener was closed after the install" + daemon.Transcript());
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.Some.StartsWith($"metrics: closed 1 listener, 0 connections and 0 half-open (of uid {TestUsers.Alice.Uid} ({TestUsers.Alice.Name}))"), daemon.Transcript());
            Assert.That(closed.Stdout, Does.Not.Contain("accepted"), "her first listener completed no connection");
            Assert.That(ours, Is.True, "the endpoint took the port and answered root" + daemon.Transcript());
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.Some.StartsWith($"metrics: port {port} may be bound by any local user"), "the start warned of the unprivileged port" + daemon.Transcript());
            Assert.That(during.Stdout.Trim(), Does.StartWith("failed"), "root's scrape of her listener on ::1" + daemon.Transcript());
            Assert.That(cookie.Stdout.Trim(), Does.StartWith("failed"), "root's second scrape, met by a syncookie" + daemon.Transcript());
            Assert.That(dropped, Is.GreaterThan(1), "the drop counted her SYN-ACKs");
            Assert.That(held.Stdout, Does.Contain("bound").And.Not.Contain("accepted"), "her listener on ::1 completed no connection" + held.Stderr);
        });
    }

    [Test]
    public async Task A_sub_uids_listener_on_the_metrics_port_is_closed_at_start_and_named_under_its_owner()
    {
        // The sweep reads uids from the kernel's socket table; the line must name whose they are, or a customer could hide
        // behind numbers no account has (and, a hundred of them, crowd others out of the line).
        Requirements.Require("newuidmap");
        using var line = await SubordinateUidLine.AddAsync($"{TestUsers.Alice.Name}:{SweptSubUid}:1");
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var (host, port) = (MetricsListen.Split(':')[0], MetricsListen.Split(':')[1]);
        var squatter = s.Ns.RunAsUserAsync(TestUsers.Alice, "unshare",
            ["--user", $"--map-users={SweptSubUid},0,1", "--setuid", "0", Requirements.Python, "-I", "-c", Squatter(host, port)],
            TimeSpan.FromSeconds(30));
        await Task.Delay(1000);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(("Metrics.Listen", MetricsListen)));
        var swept = await Poll.UntilAsync(() => daemon.LogLines().Any(l => l.Message.StartsWith("metrics: closed 1 listener,", StringComparison.Ordinal)), TimeSpan.FromSeconds(10));
        var closed = await squatter;

        Assert.Multiple(() =>
        {
            Assert.That(closed.Stdout, Does.Contain("bound"), "her sub-UID held the port before the daemon started" + closed.Stderr);
            Assert.That(swept, Is.True, "her sub-UID's listener was closed after the install" + daemon.Transcript());
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.Some.StartsWith(
                $"metrics: closed 1 listener, 0 connections and 0 half-open (of sub-UID {SweptSubUid} of uid {TestUsers.Alice.Uid} ({TestUsers.Alice.Name}))"), daemon.Transcript());
        });
    }

    // Alice's listener on HOST:PORT with a backlog of 0, for 10 s: says "bound", then "accepted" per connection, which it
    // answers with a made-up figure.
    private static string Squatter(string host, string port) => $"""
        import socket, time
        s = socket.socket(socket.AF_INET6 if ':' in '{host}' else socket.AF_INET); s.bind(('{host}', {port})); s.listen(0); s.settimeout(0.2); print('bound', flush=True)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try: c, _ = s.accept()
            except socket.timeout: continue
            except OSError as e: print('listener closed', e.errno, flush=True); break
            print('accepted', flush=True); c.settimeout(1); c.recv(4096)
            c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nsmtpi_up 1'); c.close()
        """;

    private static async Task<bool> ScrapeUntilAnsweredAsync(Scenario s, string endpoint)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            var scrape = await s.Ns.RunAsync(Requirements.Python,
                ["-I", "-c", $"import urllib.request; r = urllib.request.urlopen('http://{endpoint}/metrics', timeout=2); print(r.status)"]);
            if (scrape.Stdout.Trim() == "200")
            {
                return true;
            }

            await Task.Delay(500);
        }

        return false;
    }

    [Test]
    public async Task A_scrapers_connection_a_customer_accepted_before_the_table_existed_is_closed_when_the_daemon_starts()
    {
        // The rules drop what her socket sends and every SYN-ACK not the daemon's, but a connection made before they were
        // in is open: root's next request (its token with it) would reach her, and her answer after close() leaves from
        // an orphaned socket, which no owner rule matches. The daemon has the kernel abort it when it installs the table.
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var (host, port) = (MetricsListen.Split(':')[0], MetricsListen.Split(':')[1]);
        var go = s.Dir.PathOf("send-now");
        var squatter = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", "-c", $"""
                import socket
                s = socket.socket(); s.bind(('{host}', {port})); s.listen(5); s.settimeout(20)
                c, _ = s.accept(); print('accepted', flush=True); c.settimeout(20)
                try:
                    data = c.recv(4096); print('got', data, flush=True)
                    c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nsmtpi_up 1'); c.close()
                except OSError as e: print('aborted', e.errno, flush=True)
                """],
            TimeSpan.FromSeconds(40));
        await Task.Delay(1000);
        var scraper = s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"""
                import os, socket, time
                c = socket.create_connection(('{host}', {port}), timeout=5); print('connected', flush=True)
                end = time.monotonic() + 30
                while not os.path.exists('{go}') and time.monotonic() < end: time.sleep(0.1)
                try:
                    c.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BearerToken}\r\n\r\n'); print('answer', c.recv(4096), flush=True)
                except OSError as e: print('failed', e.errno, flush=True)
                """],
            TimeSpan.FromSeconds(40));
        await Task.Delay(1000);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(("Metrics.Listen", MetricsListen)));
        var swept = await Poll.UntilAsync(() => daemon.LogLines().Any(l => l.Message.StartsWith("metrics: closed", StringComparison.Ordinal)), TimeSpan.FromSeconds(10));
        await File.WriteAllTextAsync(go, "");
        var her = await squatter;
        var root = await scraper;

        Assert.Multiple(() =>
        {
            Assert.That(her.Stdout, Does.Contain("accepted"), "no table yet: root's connection reached her" + her.Stderr);
            Assert.That(her.Stdout, Does.Contain("aborted 103").And.Not.Contain("got"), "her socket was aborted before root's request reached her" + daemon.Transcript());
            Assert.That(root.Stdout, Does.Contain("connected").And.Not.Contain("smtpi_up"), "root read nothing of hers" + root.Stderr);
            Assert.That(root.Stdout, Does.Contain("failed 104"), "root's connection was reset (ECONNRESET), so its next one is new" + root.Stderr);
            Assert.That(swept, Is.True, "the sweep (on the thread pool after the install) said what it closed" + daemon.Transcript());
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.Some.StartsWith(
                $"metrics: closed 1 listener, 1 connection and 0 half-open (of uid {TestUsers.Alice.Uid} ({TestUsers.Alice.Name})) on the metrics endpoint's port {port}, towards local clients"), daemon.Transcript());
        });
    }

    [Test]
    public async Task With_a_bearer_token_a_scrape_without_it_gets_401_and_one_with_it_the_figures()
    {
        // Root is let through by the kernel, as is every process of a scraper user (an exporter's probe among them); the
        // token is what the real scraper has and such a process has not.
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var tokenFile = s.Dir.PathOf("metrics.token");
        await File.WriteAllTextAsync(tokenFile, BearerToken + "\n");
        File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(("Metrics.Listen", MetricsListen), ("Metrics.BearerTokenFile", tokenFile)));

        var without = await ScrapeAsync(s, null);
        var wrong = await ScrapeAsync(s, "Bearer " + new string('0', BearerToken.Length));
        var right = await ScrapeAsync(s, "Bearer " + BearerToken);

        Assert.Multiple(() =>
        {
            Assert.That(without, Does.StartWith("401"), daemon.Transcript());
            Assert.That(wrong, Does.StartWith("401"), daemon.Transcript());
            Assert.That(right, Does.StartWith("200").And.Contains("smtpi_"), daemon.Transcript());
            Assert.That(daemon.LogLines().Select(l => l.Message), Has.Some.StartsWith("metrics: 1 requests without the token of Metrics.BearerTokenFile answered 401").And.Some.Contains("the last from uid 0 (root)"), daemon.Transcript());
            Assert.That(daemon.Transcript(), Does.Not.Contain(BearerToken));
        });
    }

    private const string BearerToken = "c2d6e0f3a1b84b0f9e7d5c3b1a29f8e7";

    // "STATUS BODY" of root's GET /metrics, with the Authorization header given.
    private static async Task<string> ScrapeAsync(Scenario s, string? authorization)
    {
        var header = authorization is null ? "{}" : $"{{'Authorization': '{authorization}'}}";
        var result = await s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"import urllib.request, urllib.error\nreq = urllib.request.Request('http://{MetricsListen}/metrics', headers={header})\n"
                + "try:\n r = urllib.request.urlopen(req, timeout=5); print(r.status, r.read()[:2000])\nexcept urllib.error.HTTPError as e: print(e.code, e.read())"]);
        return result.Stdout.Trim();
    }

    private static JsonNode Report(string stdout)
    {
        var report = stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(report, Is.Not.Null, "the holder printed no result: " + stdout);
        return JsonNode.Parse(report!)!["targets"]![MetricsListen]!;
    }
}
