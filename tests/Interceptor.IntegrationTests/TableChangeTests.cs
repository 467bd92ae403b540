using System.Diagnostics;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The table check hears the kernel: a `nft flush ruleset` (a firewall reload: Debian's nftables.conf starts with one)
/// removes the guard table too, so until the tables are back customers' port 25 is open. The daemon is told of the
/// change and restores them at once, not at its next periodic check; and a periodic check lists the tables with nft
/// only when the ruleset's generation moved.
/// </summary>
[TestFixture]
[CancelAfter(90_000)]
public sealed class TableChangeTests
{
    private const string MetricsListen = "127.0.0.1:9325";

    [Test]
    public async Task A_flushed_ruleset_gets_our_tables_back_at_once_not_at_the_next_check()
    {
        // A minute between periodic checks: only the kernel's notice can bring the tables back within the test.
        await using var s = await Scenario.StartAsync(config: Config(("Interception.VerifyIntervalSeconds", 60)));
        var guard = NftTable.Name + "_guard";

        var clock = Stopwatch.StartNew();
        var flush = await s.Ns.RunAsync("nft", ["flush", "ruleset"]);
        Assert.That(flush.Succeeded, Is.True, flush.Describe());
        var back = TimeSpan.Zero;
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            var ours = await s.Ns.RunAsync("nft", ["list", "table", "inet", NftTable.Name]);
            var theGuard = await s.Ns.RunAsync("nft", ["list", "table", "inet", guard]);
            if (ours.Succeeded && theGuard.Succeeded)
            {
                back = clock.Elapsed;
                break;
            }

            await Task.Delay(20);
        }

        Assert.That(back, Is.GreaterThan(TimeSpan.Zero), $"the tables were not back 30 s after `nft flush ruleset`\n{s.Describe()}");
        Assert.That(back, Is.LessThan(TimeSpan.FromSeconds(10)), "restored when the kernel said so, not at the periodic check a minute later");
        TestContext.Out.WriteLine($"both tables listed again {back.TotalMilliseconds:F0} ms after `nft flush ruleset` returned");

        // Intercepted again: the daemon records the transaction (a direct connection would leave no trace in it).
        AssertDelivered(await SendAsync(s, TestUsers.Alice, "after-flush"), s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(s.RequireDaemon.Transactions(), Has.Count.EqualTo(1), s.Describe());
            Assert.That(Restorations(s), Is.EqualTo(1), "one restoration for one flush\n" + s.Describe());
        });
    }

    [Test]
    public async Task A_table_made_dormant_is_restored_and_mail_is_intercepted_again()
    {
        // A dormant table keeps every chain and rule in its listing and runs none: customers' port 25 would go out directly.
        await using var s = await Scenario.StartAsync(config: Config(("Interception.VerifyIntervalSeconds", 2)));

        var dormant = await s.Ns.RunAsync("nft", ["add", "table", "inet", NftTable.Name, "{ flags dormant; }"]);
        Assert.That(dormant.Succeeded, Is.True, dormant.Describe());
        var clock = Stopwatch.StartNew();
        var awake = false;
        while (!awake && clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(100);
            var listed = await s.Ns.RunAsync("nft", ["list", "table", "inet", NftTable.Name]);
            awake = listed.Succeeded && !listed.Stdout.Contains("dormant", StringComparison.Ordinal);
        }

        Assert.That(awake, Is.True, "the table was still dormant 15 s later" + s.Describe());
        TestContext.Out.WriteLine($"the table ran again {clock.Elapsed.TotalMilliseconds:F0} ms after it was made dormant");
        AssertDelivered(await SendAsync(s, TestUsers.Alice, "after-dormant"), s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(s.RequireDaemon.Transactions(), Has.Count.EqualTo(1), "intercepted again" + s.Describe());
            Assert.That(s.RequireDaemon.LogLines().Select(l => l.Message), Has.Some.Contains("which smtp-interceptor never sets: a dormant table runs none of its chains"), "the log says why" + s.Describe());
        });
    }

    [Test]
    public async Task A_periodic_check_lists_the_tables_only_when_the_ruleset_moved()
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ("Interception.VerifyIntervalSeconds", 1),
            ("Metrics.Listen", MetricsListen)));

        // The first checks list (nothing verified yet, and the start's own install notifies); then a few seconds of
        // checks with nothing changed.
        var settled = await SettledListingsAsync(s);
        await Task.Delay(TimeSpan.FromSeconds(4));
        var quiet = await ListingsAsync(s);
        var heard = await MetricAsync(s, "smtpi_table_changes_heard");

        // Another tool's table: not ours, but the ruleset moved, so the next check lists ours again (and finds them intact).
        var other = await s.Ns.RunAsync("nft", ["add", "table", "inet", "someone_elses"]);
        Assert.That(other.Succeeded, Is.True, other.Describe());
        await Task.Delay(TimeSpan.FromSeconds(3));
        var afterOther = await ListingsAsync(s);

        Assert.Multiple(() =>
        {
            Assert.That(settled, Is.GreaterThanOrEqualTo(1), "the first check lists the tables");
            Assert.That(heard, Is.EqualTo(1), "the daemon hears the kernel's change notifications");
            Assert.That(quiet, Is.EqualTo(settled), "four checks with the ruleset unchanged, no nft run");
            Assert.That(afterOther, Is.InRange(settled + 1, settled + 2), "the ruleset moved: listed once more, then quiet again");
            Assert.That(Restorations(s), Is.Zero, s.Describe());
        });
    }

    private static int Restorations(Scenario s) => s.RequireDaemon.LogLines().Count(l => l.Message == $"table inet {NftTable.Name} restored");

    private static Task<double> ListingsAsync(Scenario s) => MetricAsync(s, "smtpi_table_listings_total");

    // Until two scrapes 1.5 s apart (a check and a half) agree: the checks after the start have listed what they will.
    private static async Task<double> SettledListingsAsync(Scenario s)
    {
        var last = await ListingsAsync(s);
        for (var i = 0; i < 20; i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            var now = await ListingsAsync(s);
            if (now == last && now > 0)
            {
                return now;
            }

            last = now;
        }

        throw new AssertionException($"the listings never settled (last {last})\n{s.Describe()}");
    }

    private static async Task<double> MetricAsync(Scenario s, string name)
    {
        var (samples, text) = await ObservabilityPolicyTests.ScrapeAsync(s);
        return samples.TryGetValue(name, out var value) ? value : throw new AssertionException($"no {name}\n" + text);
    }
}
