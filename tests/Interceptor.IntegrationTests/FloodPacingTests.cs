using System.Globalization;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Pacing a flood among others (Fairness.*, FairShareScheduler.Pacing): bob storms the daemon with 40 sessions (every
/// limit that could stop him raised), alice sends mail meanwhile, and busy threads of the test process keep both cores
/// contended, so the kernel's CPU pressure (/proc/pressure/cpu) is high. The daemon must pace bob, say so naming him,
/// show it in its metrics, go on serving alice and bob, and say when it stops pacing once bob's storm ends.
/// </summary>
[TestFixture]
[NonParallelizable] // spins every core from the test process
[CancelAfter(120_000)]
public sealed class FloodPacingTests
{
    private const string MetricsListen = "127.0.0.1:9325";
    private const int MinimumPercent = 10;

    [Test]
    public async Task A_flood_among_others_on_a_contended_CPU_is_paced_in_the_users_name_and_released_when_it_ends()
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ($"Limits.Users.{TestUsers.Bob.Name}.Connections", 1000),
            ($"Limits.Users.{TestUsers.Bob.Name}.ConnectionsPerSecond", 0),
            ("Fairness.PacedMinimumPercent", MinimumPercent),
            ("Metrics.Listen", MetricsListen)));
        var bob = TestUsers.Bob;

        var flags = s.Dir.Subdirectory("flags", worldWritable: true);
        var (ready, stop) = (Path.Combine(flags, "storming"), Path.Combine(flags, "stop"));
        string? stormLine;
        IReadOnlyList<JsonNode> sends;
        double pacePercent, holds;
        using (new BusyThreads(2 * Environment.ProcessorCount))
        {
            var storm = s.Ns.RunAsUserAsync(bob, Requirements.Python,
                ["-I", s.Dir.PathOf("command_storm.py"), "127.0.0.2", "25", "--sessions", "40", "--batch", "20",
                 "--seconds", "60", "--ready", ready, "--stop", stop],
                TimeSpan.FromSeconds(90));
            for (var i = 0; i < 600 && !File.Exists(ready) && !storm.IsCompleted; i++)
            {
                await Task.Delay(50);
            }

            // Alice's mail makes bob's storm one among others; the pace is read while both go on.
            var alice = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
                ["-I", s.Dir.PathOf("flood.py"), "send", "127.0.0.2", "25", "--count", "30", "--interval", "0.1"],
                TimeSpan.FromSeconds(90));
            await Task.Delay(TimeSpan.FromSeconds(2));
            (pacePercent, holds) = await PaceAsync(s);
            var sent = await alice;
            await File.WriteAllTextAsync(stop, "");
            var stormRun = await storm;
            stormLine = stormRun.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
            var sentLine = sent.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
            Assert.That(sentLine, Is.Not.Null, "alice's sender printed no result\n" + sent.Describe() + s.Describe());
            sends = [.. JsonNode.Parse(sentLine!)!["sends"]!.AsArray().Select(n => n!)];
        }

        // No flood among others any more: pacing ends a second after the last of bob's items, and says so.
        var ended = await Poll.UntilAsync(() => s.RequireDaemon.LogLines().Any(l => l.Message.StartsWith("fair share: floods are no longer paced", StringComparison.Ordinal)), TimeSpan.FromSeconds(10));
        var (paceAfter, _) = await PaceAsync(s);
        var paced = s.RequireDaemon.LogLines().Where(l => l.Message.Contains("floods while other users send", StringComparison.Ordinal)).ToList();
        var context = $"\nstorm: {stormLine}\npace {pacePercent}%, holds {holds}{s.Describe()}";

        Assert.Multiple(() =>
        {
            Assert.That(paced, Is.Not.Empty, "the daemon says it paces a flood among others" + context);
            Assert.That(paced.Select(l => l.StateString("Uid")), Has.All.EqualTo(bob.Uid.ToString(CultureInfo.InvariantCulture)), "the paced uid is bob's" + context);
            Assert.That(paced.Select(l => l.StateString("User")), Has.All.EqualTo(bob.Name), "and the line names him" + context);
            Assert.That(pacePercent, Is.InRange(MinimumPercent, 50), "smtpi_flood_pace_percent while contended: at most the first pace, at least the floor" + context);
            Assert.That(holds, Is.GreaterThan(0), "bob's work waited for the end of its pace windows" + context);
            Assert.That(stormLine, Is.Not.Null, "the storm printed no result" + context);
            var storm = JsonNode.Parse(stormLine ?? "{}")!;
            Assert.That(storm["noops"]?.GetValue<int>(), Is.GreaterThan(0), "bob is paced, not stopped" + context);
            Assert.That(storm["errors"]?.AsObject(), Is.Empty, "no storm session failed" + context);
            Assert.That(sends.Select(n => n["ok"]!.GetValue<bool>()), Has.All.True, "alice's mail goes through" + context);
            Assert.That(RelayedFor(s, TestUsers.Alice), Has.Count.EqualTo(30), context);
            Assert.That(ended, Is.True, "the end of pacing is logged once bob's storm is over" + context);
            Assert.That(paceAfter, Is.Zero, "smtpi_flood_pace_percent is back to 0" + context);
        });
    }

    private static async Task<(double Percent, double Holds)> PaceAsync(Scenario s)
    {
        var (samples, text) = await ObservabilityPolicyTests.ScrapeAsync(s);
        Assert.That(samples.ContainsKey("smtpi_flood_pace_percent") && samples.ContainsKey("smtpi_flood_holds_total"), Is.True, text);
        return (samples["smtpi_flood_pace_percent"], samples["smtpi_flood_holds_total"]);
    }


    /// <summary>Threads of the test process that spin until disposed: every core contended, whatever else runs.</summary>
    private sealed class BusyThreads : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread[] _threads;

        public BusyThreads(int count)
        {
            _threads = [.. Enumerable.Range(0, count).Select(_ => new Thread(() =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    Thread.SpinWait(1000);
                }
            }) { IsBackground = true })];
            foreach (var thread in _threads)
            {
                thread.Start();
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            foreach (var thread in _threads)
            {
                thread.Join();
            }

            _stop.Dispose();
        }
    }
}
