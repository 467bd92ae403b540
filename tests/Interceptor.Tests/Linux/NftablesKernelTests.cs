using System.Collections.Concurrent;
using Interceptor.Linux;
using Interceptor.Tests.Netfilter;

namespace Interceptor.Tests.Linux;

/// <summary>
/// The ruleset's generation and nf_tables' change notifications from the real kernel, inside a throwaway namespace
/// (the sockets are opened there, so the host's own ruleset is neither read nor touched).
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(60_000)]
public class NftablesKernelTests
{
    private const string Ours = "smtp_interceptor";

    [Test]
    public void The_generation_moves_with_every_transaction_and_not_with_a_meters_entries()
    {
        using var ns = TestNamespace.CreateOrSkip(needsConnections: true);
        using var generation = InNetworkNamespace.Open(ns, NftablesGeneration.Open);
        var start = generation.Read();
        Assert.That(generation.Read(), Is.EqualTo(start), "nothing changed between two reads");

        Nft(ns, "add table inet other");
        var afterOne = generation.Read();
        Nft(ns, "add table inet other; add chain inet other c");
        var afterBatch = generation.Read();

        // A rule that adds each connecting user to a dynamic set from the packet path, like our per-UID rate meter.
        Nft(ns, "add chain inet other out { type filter hook output priority 0; }; add set inet other m { type uid; flags dynamic; size 100; }");
        Nft(ns, "add rule inet other out tcp dport 25 update @m { meta skuid limit rate 10/second }");
        var beforeTraffic = generation.Read();
        Assert.That(ns.Connect(1000, "127.0.0.1", 25).Outcome, Is.EqualTo("refused"));
        var listed = ns.Exec(["nft", "list", "set", "inet", "other", "m"]);

        Assert.Multiple(() =>
        {
            Assert.That(afterOne, Is.EqualTo(start + 1), "one nft command, one transaction");
            Assert.That(afterBatch, Is.EqualTo(afterOne + 1), "one script, one transaction");
            Assert.That(listed.StandardOutput, Does.Contain("1000"), "the connection put its user in the meter");
            Assert.That(generation.Read(), Is.EqualTo(beforeTraffic), "a meter's entries are not a ruleset change");
        });
    }

    [Test]
    public void The_monitor_hears_our_tables_change_and_not_anothers()
    {
        using var ns = TestNamespace.CreateOrSkip();
        var heard = new BlockingCollection<bool>();
        var failures = new ConcurrentQueue<Exception>();
        using var monitor = InNetworkNamespace.Open(ns, () => NftablesChangeMonitor.Start([Ours, Ours + "_guard"], () => heard.Add(true), failures.Enqueue));

        Nft(ns, "add table inet other; add chain inet other c; add table ip " + Ours);
        Assert.That(heard.TryTake(out _, TimeSpan.FromMilliseconds(500)), Is.False, "another table, or a table of our name in another family, is not ours");

        Nft(ns, "add table inet " + Ours + "_guard");
        Assert.That(heard.TryTake(out _, TimeSpan.FromSeconds(5)), Is.True, "our guard table was added");

        Nft(ns, "add table inet " + Ours);
        Assert.That(heard.TryTake(out _, TimeSpan.FromSeconds(5)), Is.True, "our table was added");
        while (heard.TryTake(out _))
        {
        }

        Nft(ns, "flush ruleset");
        Assert.Multiple(() =>
        {
            Assert.That(heard.TryTake(out _, TimeSpan.FromSeconds(5)), Is.True, "`nft flush ruleset` deleted our tables");
            Assert.That(failures, Is.Empty);
            Assert.That(monitor.Changes, Is.GreaterThanOrEqualTo(3));
        });
    }

    private static void Nft(TestNamespace ns, string command)
    {
        var result = ns.Exec(["nft", command]);
        Assert.That(result.ExitCode, Is.Zero, $"nft {command}: {result.StandardError}");
    }
}
