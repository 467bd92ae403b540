using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The kernel's per-uid connection rate (Limits.*.ConnectionsPerSecond / ConnectionsBurst, issue 19): a user over it is
/// refused by the kernel (TCP reset) with the named counter counting exactly those refusals, while another user within
/// it is unaffected at the same moment; a user's own rate is theirs alone; the watchdog restores a tampered meter rule.
/// Rates are set low (2/s, burst 3) so a short loop of connects is far over them.
/// </summary>
[TestFixture]
[NonParallelizable] // counts connects a second against the kernel's rate; two tests edit /etc/subuid
[CancelAfter(120_000)]
public sealed partial class ConnectionRateTests
{
    private const int Rate = 2;
    private const int Burst = 3;

    /// <summary>Connects to HOST PORT every INTERVAL seconds for SECONDS, closing each at once; prints what the kernel said.</summary>
    private const string ConnectLoop = """
        import json, socket, sys, time
        host, port, seconds, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
        refused = connected = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            try:
                socket.create_connection((host, port), 5).close()
                connected += 1
            except ConnectionRefusedError:
                refused += 1
            time.sleep(interval)
        print(json.dumps({"refused": refused, "connected": connected, "seconds": time.monotonic() - start}))
        """;

    [Test]
    public async Task A_user_over_the_rate_is_refused_by_the_kernel_with_the_counter_rising_while_another_within_it_sends_at_the_same_time()
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.ConnectionsPerSecond", Rate), ("Limits.Default.ConnectionsBurst", Burst)));
        var counterBefore = await CounterAsync(s, "ratelimit_refused");

        // Bob: 50 connects a second for 3 s. Alice meanwhile: three messages one after the other, well within 2/s.
        var bobRun = ConnectLoopAsync(s, TestUsers.Bob, seconds: 3, interval: 0.02);
        var alice = new List<DialogResult>();
        for (var i = 0; i < 3; i++)
        {
            alice.Add(await SendAsync(s, TestUsers.Alice, "alice-during-" + i.ToString(CultureInfo.InvariantCulture)));
        }

        var bob = await bobRun;
        var counterAfter = await CounterAsync(s, "ratelimit_refused");
        var listing = await NftTable.ListAsync(s.Ns, "table", "inet", NftTable.Name);
        var context = $"\nbob: {bob}\n{listing}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(bob.Refused, Is.GreaterThan(50), "most of bob's connects are refused by the kernel" + context);
            Assert.That(bob.Connected, Is.InRange(Burst, MostAllowed(bob.Seconds)), "bob gets his burst and his rate, no more" + context);
            Assert.That(counterAfter - counterBefore, Is.EqualTo(bob.Refused), "the named counter counts exactly bob's refusals (none of alice's)" + context);
            Assert.That(alice.Select(a => a.Reply("BODY")?.Code), Has.All.EqualTo(250), "alice's mail is delivered during bob's flood" + context);
            Assert.That(RelayedFor(s, TestUsers.Alice), Has.Count.EqualTo(3), context);
            Assert.That(listing, Does.Contain("update @ratelimit_meter { meta skuid limit rate over 2/second burst 3 packets }"), context);
        });
    }

    [Test]
    public async Task Connections_straight_to_the_listener_spend_the_same_bucket_and_are_refused_by_the_kernel_over_it()
    {
        // Not redirected, each still costs the daemon an accept, an attribution and a 421: before, a loop of them ran at
        // any rate. Bob connects to the listener itself at 50/s for 2 s.
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.ConnectionsPerSecond", Rate), ("Limits.Default.ConnectionsBurst", Burst)));
        var counterBefore = await CounterAsync(s, "ratelimit_refused");

        var bob = await ConnectLoopAsync(s, TestUsers.Bob, seconds: 2, interval: 0.02, host: "127.0.0.1", port: new DaemonConfig().ListenPort);

        var counterAfter = await CounterAsync(s, "ratelimit_refused");
        var listing = await NftTable.ListAsync(s.Ns, "table", "inet", NftTable.Name);
        var context = $"\nbob: {bob}\n{listing}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(bob.Refused, Is.GreaterThan(30), "most of bob's direct connects are refused by the kernel" + context);
            Assert.That(bob.Connected, Is.InRange(Burst, MostAllowed(bob.Seconds)), "bob gets his burst and his rate, no more" + context);
            Assert.That(counterAfter - counterBefore, Is.EqualTo(bob.Refused), "counted by the meter's counter" + context);
        });

        // Alice, whose bucket is her own, still sends.
        Assert.That((await SendAsync(s, TestUsers.Alice, "alice-after")).Reply("BODY")?.Code, Is.EqualTo(250), context);
    }

    [Test]
    public async Task A_users_own_rate_replaces_the_default_for_that_user_only_with_its_own_counter()
    {
        // Alice may open 1000/s; bob has a burst of 1 of his own (his rate follows the default 2/s).
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.ConnectionsPerSecond", Rate), ("Limits.Default.ConnectionsBurst", Burst),
            ("Limits.Users.smtpi-alice.ConnectionsPerSecond", 1000), ("Limits.Users.smtpi-alice.ConnectionsBurst", 1000),
            ("Limits.Users.smtpi-bob.ConnectionsBurst", 1)));
        var aliceCounter = "ratelimit_refused_uid" + TestUsers.Alice.Uid.ToString(CultureInfo.InvariantCulture);
        var bobCounter = "ratelimit_refused_uid" + TestUsers.Bob.Uid.ToString(CultureInfo.InvariantCulture);

        var runs = await Task.WhenAll(
            ConnectLoopAsync(s, TestUsers.Alice, seconds: 2, interval: 0.02),
            ConnectLoopAsync(s, TestUsers.Bob, seconds: 2, interval: 0.02));
        var (alice, bob) = (runs[0], runs[1]);
        var listing = await NftTable.ListAsync(s.Ns, "table", "inet", NftTable.Name);
        var (bobCounted, aliceCounted, defaultCounted) =
            (await CounterAsync(s, bobCounter), await CounterAsync(s, aliceCounter), await CounterAsync(s, "ratelimit_refused"));
        var context = $"\nalice: {alice}\nbob: {bob}\n{listing}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(alice.Refused, Is.Zero, "alice's own rate lets all her connects through" + context);
            Assert.That(alice.Connected, Is.GreaterThan(MostAllowed(alice.Seconds)), "more than the default would allow" + context);
            Assert.That(bob.Connected, Is.InRange(1, 1 + (int)Math.Ceiling(Rate * bob.Seconds) + 1), "bob's burst is 1" + context);
            Assert.That(bobCounted, Is.EqualTo(bob.Refused), "bob's refusals count in his own counter" + context);
            Assert.That(aliceCounted, Is.Zero, context);
            Assert.That(defaultCounted, Is.Zero, "the default meter saw neither" + context);
        });
    }

    [Test]
    public async Task A_tampered_meter_rule_is_noticed_and_restored_by_the_watchdog()
    {
        const int interval = 2;
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.ConnectionsPerSecond", Rate), ("Limits.Default.ConnectionsBurst", Burst),
            ("Interception.VerifyIntervalSeconds", interval)));
        var listing = await s.Ns.RunAsync("nft", ["-a", "list", "chain", "inet", NftTable.Name, NftTable.FilterChain]);
        var line = listing.Stdout.Split('\n').Single(l => l.Contains("update @ratelimit_meter", StringComparison.Ordinal));
        var handle = HandlePattern().Match(line).Groups[1].Value;
        var rule = HandlePattern().Replace(line, "").Replace("over 2/second", "over 1000/second", StringComparison.Ordinal).Trim();

        // Frozen while tampering and listing: the daemon hears the change from the kernel and would restore it at once.
        var (tamper, tampered) = await s.RequireDaemon.WhileFrozenAsync(async () =>
            (await s.Ns.RunAsync("nft", ["replace", "rule", "inet", NftTable.Name, NftTable.FilterChain, "handle", handle, rule]),
             await NftTable.ListAsync(s.Ns, "table", "inet", NftTable.Name)));
        Assert.That(tamper.Succeeded, Is.True, tamper.Describe());
        string? restored = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(interval + 8);
        while (restored is null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            // The meter's own rule: every owner of sub-UIDs in /etc/subuid (useradd gives each new user a range) has a
            // rule of its own at the same default rate, so the whole table says "over 2/second" even while tampered.
            var now = await NftTable.ListAsync(s.Ns, "table", "inet", NftTable.Name);
            restored = MeterRule(now).Contains("limit rate over 2/second burst 3 packets", StringComparison.Ordinal) ? now : null;
        }

        var warnings = s.RequireDaemon.LogLines().Where(l => l.Category == "netfilter").Select(l => l.Message).ToList();
        var context = $"\ntampered:\n{tampered}\n{string.Join("\n", warnings)}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(MeterRule(tampered), Does.Contain("limit rate over 1000/second"), "the tampering took" + context);
            Assert.That(warnings, Has.Some.Contains("limits over 1000/second burst 3, expected over 2/second burst 3"), "the difference is named" + context);
            Assert.That(restored, Is.Not.Null, "the rule is restored" + context);
        });
    }

    private static string MeterRule(string table) =>
        table.Split('\n').SingleOrDefault(l => l.Contains("update @ratelimit_meter", StringComparison.Ordinal)) ?? "";

    // The burst, the rate over the time the loop ran, and one token of slack for timing at either end.
    private static int MostAllowed(double seconds) => Burst + (int)Math.Ceiling(Rate * seconds) + 1;

    private static async Task<long> CounterAsync(Scenario s, string counter)
    {
        var listing = await s.Ns.RunAsync("nft", ["-j", "list", "counter", "inet", NftTable.Name, counter]);
        Assert.That(listing.Succeeded, Is.True, listing.Describe());
        var node = JsonNode.Parse(listing.Stdout)!["nftables"]!.AsArray().Single(n => n?["counter"] is not null)!;
        return node["counter"]!["packets"]!.GetValue<long>();
    }

    private static async Task<LoopResult> ConnectLoopAsync(Scenario s, TestUser user, double seconds, double interval, string host = "127.0.0.2", int port = 25)
    {
        var run = await s.Ns.RunAsUserAsync(user, Requirements.Python,
            ["-I", "-c", ConnectLoop, host, port.ToString(CultureInfo.InvariantCulture), seconds.ToString(CultureInfo.InvariantCulture), interval.ToString(CultureInfo.InvariantCulture)],
            TimeSpan.FromSeconds(60));
        var line = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "the connect loop printed no result\n" + run.Describe());
        using var result = JsonDocument.Parse(line!);
        var root = result.RootElement;
        return new LoopResult(root.GetProperty("refused").GetInt32(), root.GetProperty("connected").GetInt32(), root.GetProperty("seconds").GetDouble());
    }

    private sealed record LoopResult(int Refused, int Connected, double Seconds);

    [GeneratedRegex(@"\s*# handle (\d+)\s*$")]
    private static partial Regex HandlePattern();
}
