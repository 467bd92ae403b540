using System.Globalization;
using System.Text.Json;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Sub-UIDs and the kernel's connection rate (issue 19, item 2). The meter (a dynamic set of 65,535 uids) cannot take a
/// uid once full, and then that uid's SYNs pass unmetered; a customer with a range in /etc/subuid can become each of its
/// 65,536 uids (newuidmap) and fill it. Here alice really does: inside a user namespace mapping her whole range, one
/// process becomes every uid of it in turn (seteuid) and opens a connection from each.
/// </summary>
public sealed partial class ConnectionRateTests
{
    private const uint SubUidRangeStart = 1_910_000_000;
    private const int SubUidRangeCount = 65_536;
    private const int Probes = 40;

    /// <summary>
    /// Run as uid 0 of a namespace mapping the range: every uid of it opens one socket and sends one SYN (non-blocking,
    /// closed at once), then PROBES more uids of it each connect and wait for the kernel's answer.
    /// </summary>
    private const string SubUidFlood = """
        import errno, json, os, socket, sys, time
        host, port, count, probes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        def socket_as(uid):
            os.seteuid(uid)
            try:
                return socket.socket()
            finally:
                os.seteuid(0)
        start = time.monotonic()
        for uid in range(count):
            s = socket_as(uid)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except (BlockingIOError, ConnectionRefusedError):
                pass
            s.close()
        filled = time.monotonic() - start
        refused = connected = 0
        for uid in range(1, probes + 1):
            s = socket_as(uid * 997)
            s.settimeout(5)
            try:
                s.connect((host, port))
                connected += 1
            except ConnectionRefusedError:
                refused += 1
            s.close()
        print(json.dumps({"refused": refused, "connected": connected, "seconds": time.monotonic() - start, "fill": filled}))
        """;

    [Test]
    public async Task Sub_uids_that_could_fill_the_meter_share_one_bucket_and_a_fresh_uid_of_another_user_is_still_limited()
    {
        Requirements.Require("newuidmap");
        using var line = await SubordinateUidLine.AddAsync(
            $"{TestUsers.Alice.Name}:{SubUidRangeStart}:{SubUidRangeCount.ToString(CultureInfo.InvariantCulture)}");
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.ConnectionsPerSecond", Rate), ("Limits.Default.ConnectionsBurst", Burst)));
        var subCounter = "ratelimit_refused_subuids_uid" + TestUsers.Alice.Uid.ToString(CultureInfo.InvariantCulture);
        var defaultBefore = await CounterAsync(s, "ratelimit_refused");

        // Alice becomes all 65,536 of her sub-UIDs, more than the meter holds; then bob, a uid the meter has never seen.
        var flood = await s.Ns.RunAsUserAsync(TestUsers.Alice, "unshare",
            ["--user", $"--map-users={SubUidRangeStart},0,{SubUidRangeCount}", "--setuid", "0", Requirements.Python,
                "-I", "-c", SubUidFlood, NetworkNamespace.MxAddress4, "25",
                SubUidRangeCount.ToString(CultureInfo.InvariantCulture), Probes.ToString(CultureInfo.InvariantCulture)],
            TimeSpan.FromSeconds(120));
        var bob = await ConnectLoopAsync(s, TestUsers.Bob, seconds: 2, interval: 0.02);
        var subs = ParseFlood(flood);
        TestContext.Progress.WriteLine($"sub-uid flood: {subs} (fill {flood.Stdout.Trim()}); bob after it: {bob}");
        var listing = await NftTable.ListAsync(s.Ns, "set", "inet", NftTable.Name, "ratelimit_meter");
        var table = await NftTable.ListAsync(s.Ns, "chain", "inet", NftTable.Name, NftTable.FilterChain);
        var subCounted = await CounterAsync(s, subCounter);
        var defaultCounted = await CounterAsync(s, "ratelimit_refused") - defaultBefore;
        var context = $"\nsub-uids: {subs}\nbob: {bob}\n{table}\nmeter holds {listing.Split("limit rate").Length - 1} uids{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(bob.Refused, Is.GreaterThan(50), "bob, new to the meter after alice's flood, is still refused over his rate" + context);
            Assert.That(bob.Connected, Is.InRange(Burst, MostAllowed(bob.Seconds)), "bob gets his burst and his rate, no more" + context);
            Assert.That(defaultCounted, Is.EqualTo(bob.Refused), "the default counter counts bob's refusals, none of alice's sub-UIDs" + context);
            Assert.That(subs.Connected, Is.LessThanOrEqualTo(MostAllowed(subs.Seconds)),
                "her sub-UIDs together get one burst and one rate, not one each" + context);
            Assert.That(subs.Refused, Is.GreaterThanOrEqualTo(Probes - MostAllowed(subs.Seconds)), context);
            Assert.That(subCounted, Is.GreaterThanOrEqualTo(SubUidRangeCount + Probes - MostAllowed(subs.Seconds)),
                "every refusal of her sub-UIDs counts in her sub-UIDs' counter" + context);
            Assert.That(listing, Does.Not.Match(@"\b19100\d{5}\b"), "no sub-UID of hers (1910000000-1910065535) entered the meter" + context);
        });
    }

    [Test]
    public async Task A_range_added_to_etc_subuid_while_the_daemon_runs_gets_its_rule_at_the_watchdogs_next_check()
    {
        const int interval = 2;
        await using var s = await Scenario.StartAsync(config: Config(
            ("Limits.Default.ConnectionsPerSecond", Rate), ("Limits.Default.ConnectionsBurst", Burst), ("Interception.VerifyIntervalSeconds", interval)));
        var rule = $"meta skuid 1920000000-1920000099 ct state new limit rate over {Rate}/second burst {Burst} packets";
        var before = await NftTable.ListAsync(s.Ns, "chain", "inet", NftTable.Name, NftTable.FilterChain);
        using var line = await SubordinateUidLine.AddAsync($"{TestUsers.Bob.Name}:1920000000:100");

        string? after = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(interval + 10);
        while (after is null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
            var now = await NftTable.ListAsync(s.Ns, "chain", "inet", NftTable.Name, NftTable.FilterChain);
            after = now.Contains(rule, StringComparison.Ordinal) ? now : null;
        }

        Assert.Multiple(() =>
        {
            Assert.That(before, Does.Not.Contain("1920000000"), before);
            Assert.That(after, Is.Not.Null.And.Contains("meta skuid != @ratelimit_own_users meta skuid != @ratelimit_subuids"),
                "the new range has its own rule and the meter leaves it out" + s.Describe());
        });
    }

    private static LoopResult ParseFlood(ProcessResult run)
    {
        var line = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "the sub-UID flood printed no result\n" + run.Describe());
        using var result = JsonDocument.Parse(line!);
        var root = result.RootElement;
        return new LoopResult(root.GetProperty("refused").GetInt32(), root.GetProperty("connected").GetInt32(), root.GetProperty("seconds").GetDouble());
    }
}
