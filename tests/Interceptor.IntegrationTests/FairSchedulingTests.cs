using System.Globalization;
using System.Text.Json.Nodes;
using Interceptor.Daemon.Fairness;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The daemon's fair scheduling between users (issue 19, FairShareScheduler): bob keeps the daemon's CPU busy with 100
/// sessions storming it with pipelined NOOPs (every limit that could stop him raised: connections, the kernel's
/// connection rate), so nothing but the scheduler stands between his work and alice's; alice, at the default limits,
/// sends messages one after another, first alone, then during the storm, in the same test. Her median time per message
/// during the storm must stay within a bound of her median alone: with the thread pool's first come, first served
/// every step of her session queues behind the storm's 100 sessions, with the scheduler behind one of them. Bob storms
/// alone for longer than AloneAfter before alice sends again, so his sessions first run outside the scheduler and must
/// go back to their turns once her work arrives.
/// </summary>
[TestFixture]
[NonParallelizable] // compares alice's latency under a storm with her latency alone
[CancelAfter(120_000)]
public sealed class FairSchedulingTests
{
    private const int StormSessions = 100;
    private const int NoopsPerWrite = 100;
    private const int Messages = 30;

    /// <summary>
    /// The bound on alice's median during the storm, as a multiple of her median alone. Measured on a loaded 2-core
    /// machine (load 19-55 from other builds and tests): with the scheduler ×3.7-8.6 (7 runs); with the scheduler
    /// bypassed (sessions on the thread pool directly) ×61-100 (3 runs). The bound sits between them: 2.3 above the
    /// worst run with the scheduler, 3 below the best run without it.
    /// </summary>
    private const double Factor = 20;

    /// <summary>
    /// Alice's median alone is taken as at least this: on an idle machine a message takes a few milliseconds, and a ratio
    /// of a few milliseconds would measure one scheduling hiccup of the machine rather than the daemon.
    /// </summary>
    private static readonly TimeSpan AloneFloor = TimeSpan.FromMilliseconds(10);

    [Test]
    public async Task A_user_storming_the_daemon_with_100_sessions_slows_another_users_mail_by_a_bounded_factor_only()
    {
        await using var s = await Scenario.StartAsync(config: Config(
            ($"Limits.Users.{TestUsers.Bob.Name}.Connections", 1000),
            ($"Limits.Users.{TestUsers.Bob.Name}.ConnectionsPerSecond", 0)));
        var alone = await SendTimedAsync(s, Messages);

        var flags = s.Dir.Subdirectory("flags", worldWritable: true);
        var (ready, stop) = (Path.Combine(flags, "storming"), Path.Combine(flags, "stop"));
        var storm = s.Ns.RunAsUserAsync(TestUsers.Bob, Requirements.Python,
            ["-I", s.Dir.PathOf("command_storm.py"), "127.0.0.2", "25", "--sessions", Text(StormSessions),
             "--batch", Text(NoopsPerWrite), "--seconds", "60", "--ready", ready, "--stop", stop],
            TimeSpan.FromSeconds(90));
        for (var i = 0; i < 300 && !File.Exists(ready) && !storm.IsCompleted; i++)
        {
            await Task.Delay(50);
        }

        // Bob alone for longer than AloneAfter: his sessions step outside the scheduler (FairShareScheduler.Lanes), and
        // alice's first message is what sends them back to their turns.
        await Task.Delay(FairShareScheduler.AloneAfter + TimeSpan.FromSeconds(1));
        var cpuBefore = ProcessCpu.Seconds(s.RequireDaemon.Process.ProcessId);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var during = await SendTimedAsync(s, Messages);
        var daemonCores = (ProcessCpu.Seconds(s.RequireDaemon.Process.ProcessId) - cpuBefore) / watch.Elapsed.TotalSeconds;
        await File.WriteAllTextAsync(stop, "");
        var stormRun = await storm;

        var line = stormRun.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "the storm printed no result\n" + stormRun.Describe() + s.Describe());
        var result = JsonNode.Parse(line!)!;
        var (aloneMedian, duringMedian) = (Percentile(alone, 0.5), Percentile(during, 0.5));
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"storm by bob: {line}\n" +
            $"daemon CPU while alice sent during the storm: {daemonCores:F2} cores\n" +
            $"alice alone:  median {aloneMedian * 1000:F1} ms, p90 {Percentile(alone, 0.9) * 1000:F1} ms, max {alone.Max(a => a.Seconds) * 1000:F1} ms\n" +
            $"alice storm:  median {duringMedian * 1000:F1} ms, p90 {Percentile(during, 0.9) * 1000:F1} ms, max {during.Max(a => a.Seconds) * 1000:F1} ms\n" +
            $"ratio of medians {duringMedian / aloneMedian:F2}"));
        var reference = Math.Max(aloneMedian, AloneFloor.TotalSeconds);
        var context = $"\n{line}\nalone: {string.Join(" ", alone.Select(a => a.Seconds))}\nduring: {string.Join(" ", during.Select(a => a.Seconds))}{s.Describe()}";
        Assert.Multiple(() =>
        {
            // The storm was on, whole, while alice sent: none of bob's limits stopped it, so only the scheduler was left.
            Assert.That(result["sessions"]!.GetValue<int>(), Is.GreaterThanOrEqualTo(StormSessions), "every storm session was served" + context);
            Assert.That(result["greetings"]!.AsObject().Select(g => g.Key), Is.EqualTo(new[] { "220" }), "no storm session was refused" + context);
            Assert.That(result["other_replies"]!.AsObject(), Is.Empty, "every NOOP got its 250" + context);
            Assert.That(result["errors"]!.AsObject(), Is.Empty, "no storm session failed" + context);
            Assert.That(during.Select(d => d.Start + d.Seconds), Has.All.LessThan(result["first_end"]!.GetValue<double>()),
                "every storm session was still storming when alice's last message was done" + context);
            Assert.That(alone.Concat(during).Select(a => a.Ok), Has.All.True, "alice's mail is delivered" + context);
            Assert.That(RelayedFor(s, TestUsers.Alice), Has.Count.EqualTo(2 * Messages), context);
            Assert.That(duringMedian, Is.LessThanOrEqualTo(Factor * reference),
                $"alice's median time per message during the storm ({duringMedian * 1000:F0} ms) is within {Factor}× her median alone " +
                $"({aloneMedian * 1000:F0} ms, at least {AloneFloor.TotalMilliseconds:F0} ms)" + context);
        });
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static double Percentile(IReadOnlyList<TimedSend> sends, double p)
    {
        var sorted = sends.Select(x => x.Seconds).Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    private sealed record TimedSend(double Start, double Seconds, bool Ok, string? Error);

    private static async Task<IReadOnlyList<TimedSend>> SendTimedAsync(Scenario s, int count)
    {
        var run = await s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", s.Dir.PathOf("flood.py"), "send", "127.0.0.2", "25", "--count", Text(count), "--interval", "0.1"],
            TimeSpan.FromSeconds(90));
        var line = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "the timed sender printed no result\n" + run.Describe());
        return [.. JsonNode.Parse(line!)!["sends"]!.AsArray().Select(n => new TimedSend(
            n!["start"]!.GetValue<double>(), n["seconds"]!.GetValue<double>(), n["ok"]!.GetValue<bool>(), n["error"]?.GetValue<string>()))];
    }
}

/// <summary>CPU time of a process from /proc/PID/stat (user + system, in seconds).</summary>
internal static class ProcessCpu
{
    public static double Seconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks / 100.0;
    }
}
