using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12.7: each refused connection used to write one warning line, with no uid and no limit (15,000
/// lines/s from one user, enough for journald to drop the real transaction lines). Now refusals are
/// logged once per cause and uid, then counted in a summary line, naming the uid and user.
/// </summary>
[TestFixture]
[NonParallelizable] // a thousand refusals from floods of a few seconds, each attributed in time
[CancelAfter(180_000)]
public sealed class RefusalLogTests
{
    private const string NotPermittedLocal = "127.0.0.9";

    [Test]
    public async Task A_flood_of_refused_connections_writes_a_few_lines_naming_the_user_with_exact_counts()
    {
        // The kernel's connection rate would refuse most of the flood before the daemon sees it (direct connections to the
        // listener spend the same bucket): this test is about the daemon's log of what reaches it.
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Limits.Default.ConnectionsPerSecond", 0)));
        var bob = TestUsers.Bob;
        var config = new DaemonConfig();

        // Direct to the listener (not redirected), then redirected to an address of this host that is not permitted.
        var direct = await FloodAsync(s, "127.0.0.1", config.ListenPort);
        var local = await FloodAsync(s, NotPermittedLocal, 25);
        var refusedSeen = direct.Refused + local.Refused;
        Assert.That(refusedSeen, Is.GreaterThan(1_000), $"the flood must make thousands of refused connections (direct {direct}, local {local})");

        // Stopping writes the summaries still pending (the interval is 60 s by default).
        Assert.That(await s.RequireDaemon.StopAsync(), Is.EqualTo(0), s.Describe());
        var refusalLines = s.RequireDaemon.LogLines().Where(l => l.Message.StartsWith("refused", StringComparison.Ordinal)).ToList();
        var bobLines = refusalLines.Where(l => l.StateString("Uid") == bob.Uid.ToString(CultureInfo.InvariantCulture)).ToList();
        var sample = string.Join("\n", refusalLines.Take(8).Select(l => l.Message));
        Assert.Multiple(() =>
        {
            Assert.That(refusalLines, Has.Count.LessThanOrEqualTo(8), $"{refusalLines.Count} refusal lines for {refusedSeen} refused connections; the first:\n{sample}");
            Assert.That(bobLines.Select(l => l.StateString("Cause")).Distinct().ToList(), Has.Count.EqualTo(2), "both kinds of refusal name bob's uid\n" + sample);
            Assert.That(bobLines.Select(l => l.StateString("User")), Has.All.EqualTo(bob.Name), "and his user name");
        });

        // The first line of each key stands for one refusal; each summary says how many followed.
        static long Counted(IEnumerable<DaemonLogLine> lines) =>
            lines.Sum(l => l.StateString("Count") is { } count ? long.Parse(count, CultureInfo.InvariantCulture) : 1);
        var logged = Counted(refusalLines);
        var loggedBob = Counted(bobLines);
        var attempted = direct.Connections + direct.Errors + local.Connections + local.Errors;
        TestContext.Out.WriteLine(
            $"refused as the client saw it: {refusedSeen} (direct {direct}, local {local}); counted in the log: {logged} in {refusalLines.Count} lines, {loggedBob} of them as bob's\n{sample}");
        Assert.Multiple(() =>
        {
            Assert.That(logged, Is.InRange(refusedSeen, attempted), "the log's counts must cover every refusal the client saw, and no more than it attempted");
            Assert.That(loggedBob, Is.GreaterThanOrEqualTo(logged * 99 / 100), "nearly every refusal is named as bob's (the rest: owner not found in time)\n" + sample);
        });
    }

    private static async Task<FloodResult> FloodAsync(Scenario s, string host, int port)
    {
        var run = await s.Ns.RunAsUserAsync(
            TestUsers.Bob,
            Requirements.Python,
            ["-I", s.Dir.PathOf("flood.py"), "flood", host, port.ToString(CultureInfo.InvariantCulture), "--threads", "4", "--seconds", "3", "--hold", "0"],
            TimeSpan.FromSeconds(60));
        Assert.That(run.Succeeded, Is.True, run.Describe());
        using var output = JsonDocument.Parse(run.Stdout);
        var root = output.RootElement;
        var greetings = root.GetProperty("greetings");
        var refused = greetings.TryGetProperty("421", out var count) ? count.GetInt32() : 0;
        var errors = root.GetProperty("errors").EnumerateObject().Sum(e => e.Value.GetInt32());
        Assert.That(greetings.EnumerateObject().Select(g => g.Name), Has.All.EqualTo("421"), $"every connection to {host}:{port} must be refused: {run.Stdout}");
        return new FloodResult(root.GetProperty("connections").GetInt32(), refused, errors);
    }

    private sealed record FloodResult(int Connections, int Refused, int Errors)
    {
        public override string ToString() => $"{Refused} refused of {Connections}, {Errors} errors";
    }
}
