using System.Globalization;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The metrics endpoint listens on loopback, where every local user can connect. A customer's site that kept its eight
/// connections open (and reopened each as it ended) held every slot, and the provider's scraper was refused: each user
/// may now hold two, her sub-UIDs' connections counted as hers, and two are kept for the scraper.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class MetricsConnectionShareTests
{
    private const string MetricsListen = "127.0.0.1:9326";
    private const uint SubUidRangeStart = 1_920_000_000;
    private const int SubUidRangeCount = 1000;

    [Test]
    public async Task A_user_and_her_sub_uids_hold_two_metrics_connections_and_the_scraper_is_still_answered()
    {
        Requirements.Require("newuidmap");
        using var line = await SubordinateUidLine.AddAsync(
            $"{TestUsers.Alice.Name}:{SubUidRangeStart}:{SubUidRangeCount.ToString(CultureInfo.InvariantCulture)}");
        await using var s = await Scenario.StartAsync(config: Config(("Metrics.Listen", MetricsListen)));
        var daemon = s.RequireDaemon;
        var holder = s.Dir.PathOf("hold_connections.py");

        // Alice opens eight, as many as the endpoint has slots; then, as one of her sub-UIDs, eight more.
        var own = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", holder, "--target", MetricsListen + ":8", "--hold", "4"], TimeSpan.FromSeconds(30));
        await Task.Delay(500);
        var sub = s.Ns.RunAsUserAsync(TestUsers.Alice, "unshare",
            ["--user", $"--map-users={SubUidRangeStart},0,{SubUidRangeCount}", "--setuid", "0",
                Requirements.Python, "-I", holder, "--target", MetricsListen + ":8", "--hold", "3"],
            TimeSpan.FromSeconds(30));
        await Task.Delay(1000);

        // Meanwhile the scraper (root here) asks.
        var scrape = await s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=5); print(r.status)"]);
        var (ownRun, subRun) = (await own, await sub);
        var ownConnections = Greetings(ownRun.Stdout);
        var subConnections = Greetings(subRun.Stdout);
        await TestContext.Out.WriteLineAsync($"alice: {ownConnections.ToJsonString()}; her sub-UID: {subConnections.ToJsonString()}");

        Assert.Multiple(() =>
        {
            Assert.That(scrape.Stdout.Trim(), Is.EqualTo("200"), "the scraper was answered while she held hers" + scrape.Describe() + s.Describe());
            Assert.That(ownConnections["none"]?.GetValue<int>(), Is.EqualTo(2), "two of hers were kept open (nothing sent yet)\n" + ownRun.Describe());
            Assert.That(ownConnections["closed"]?.GetValue<int>(), Is.EqualTo(6), "the six over her share were closed at once\n" + ownRun.Describe());
            Assert.That(subConnections["closed"]?.GetValue<int>(), Is.EqualTo(8), "her sub-UID's count as hers: all closed\n" + subRun.Describe());
            Assert.That(daemon.LogLines().Select(l => l.Message),
                Has.Some.Contains($"metrics: uid {TestUsers.Alice.Uid} holds 2 connections already"), "the log names her" + s.Describe());
        });
    }

    [Test]
    public async Task Three_users_holding_their_shares_leave_the_scrapers_two_connections_to_the_scraper()
    {
        // Three customers (the third, nobody, as a web server's user fetching URLs for a site would be) hold two each; a
        // fourth (a uid with no account, as in a container) finds every slot but the scraper's two taken.
        const uint noAccount = 54321;
        await using var s = await Scenario.StartAsync(config: Config(("Metrics.Listen", MetricsListen)));
        var daemon = s.RequireDaemon;
        string[] Hold(double seconds) => ["-I", s.Dir.PathOf("hold_connections.py"), "--target", MetricsListen + ":8", "--hold", seconds.ToString(CultureInfo.InvariantCulture)];
        var holders = new[] { TestUsers.Alice, TestUsers.Bob, TestUsers.Nobody }.Select(u => s.Ns.RunAsUserAsync(u, Requirements.Python, Hold(4), TimeSpan.FromSeconds(30))).ToList();
        await Task.Delay(500);
        var fourth = s.Ns.RunAsync("setpriv", [$"--reuid={noAccount}", $"--regid={noAccount}", "--clear-groups", Requirements.Python, .. Hold(3)], TimeSpan.FromSeconds(30));
        await Task.Delay(1000);

        var scrape = await s.Ns.RunAsync(Requirements.Python,
            ["-I", "-c", $"import urllib.request; r = urllib.request.urlopen('http://{MetricsListen}/metrics', timeout=5); print(r.status)"]);
        var held = new List<JsonNode>();
        foreach (var holder in holders)
        {
            held.Add(Greetings((await holder).Stdout));
        }

        var fourthRun = await fourth;
        var refused = Greetings(fourthRun.Stdout);
        await TestContext.Out.WriteLineAsync($"alice, bob, nobody: {string.Join("; ", held.Select(h => h.ToJsonString()))}; uid {noAccount}: {refused.ToJsonString()}");

        Assert.Multiple(() =>
        {
            Assert.That(held.Select(h => h["none"]?.GetValue<int>()), Is.EqualTo(new int?[] { 2, 2, 2 }), "each user held her share");
            Assert.That(refused["closed"]?.GetValue<int>(), Is.EqualTo(8), "the fourth user got none of the scraper's two\n" + fourthRun.Describe());
            Assert.That(scrape.Stdout.Trim(), Is.EqualTo("200"), "the scraper was answered" + scrape.Describe() + s.Describe());
            Assert.That(daemon.LogLines().Select(l => l.Message),
                Has.Some.Contains("metrics: connection cap reached (8 requests at once, 2 of them kept for root and Metrics.ScraperUsers)"), s.Describe());
        });
    }

    private static JsonNode Greetings(string stdout)
    {
        var report = stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(report, Is.Not.Null, "the holder printed no result: " + stdout);
        return JsonNode.Parse(report!)!["targets"]![MetricsListen]!["greetings"]!;
    }
}
