using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 14.2: the count of open SMTP sessions (`status`, metrics, systemd's STATUS=) must come back to exactly 0 after
/// a storm of short connections. The listener used to store a session's task after starting it while the session's own
/// end removed it: a session that ended first (a refusal, a client that reset) left a stale entry behind, and the
/// count drifted upward for good. Now one dispatcher registers each connection before it runs.
/// </summary>
[TestFixture]
[NonParallelizable] // needs thousands of connections within seconds
[CancelAfter(240_000)]
public sealed class ActiveSessionsTests
{
    private const string NotPermittedLocal = "127.0.0.9";

    [Test]
    public async Task Floods_of_refused_and_reset_connections_leave_the_active_sessions_at_exactly_zero()
    {
        // No kernel rate limit: the floods must reach the daemon (thousands of connections in seconds).
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Limits.Default.ConnectionsPerSecond", 0)));
        var daemon = s.RequireDaemon;
        var listenPort = new DaemonConfig().ListenPort.ToString(CultureInfo.InvariantCulture);
        Assert.That(await ActiveSessionsAsync(daemon), Is.Zero, "before");

        // Refused at once: not redirected (straight to the listener), and redirected to a local address not permitted;
        // then the same and a real MX with clients that reset right after connecting (the reply meets a dead socket).
        string[][] floods =
        [
            ["127.0.0.1", listenPort],
            [NotPermittedLocal, "25"],
            ["127.0.0.1", listenPort, "--reset"],
            ["127.0.0.2", "25", "--reset"],
        ];
        // One after the other: each gets the machine to itself.
        var runs = new List<int>();
        foreach (var flood in floods)
        {
            runs.Add(await FloodAsync(s, flood));
        }

        var connections = runs.Sum();
        TestContext.Out.WriteLine($"{connections} short connections in 4 floods of 4 s ({string.Join(", ", runs)})");
        Assert.That(connections, Is.GreaterThan(2_000), "the floods must make thousands of connections");

        // Sessions end a moment after their clients; then the count must be exactly 0, and stay there.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        int active;
        while ((active = await ActiveSessionsAsync(daemon)) != 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
        }

        Assert.That(active, Is.Zero, $"activeSessions after {connections} connections ended" + s.Describe());
        await Task.Delay(1_000);
        Assert.That(await ActiveSessionsAsync(daemon), Is.Zero, "still 0 a second later");
        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), s.Describe());
        var stopping = daemon.LogLines().Single(l => l.Message.StartsWith("stopping:", StringComparison.Ordinal));
        Assert.That(stopping.StateString("Sessions"), Is.EqualTo("0"), "the stop line counts no session either: " + stopping.Raw);
    }

    /// <summary>Bob floods HOST PORT for 4 s with 4 threads; returns the connections made.</summary>
    private static async Task<int> FloodAsync(Scenario s, string[] target)
    {
        var run = await s.Ns.RunAsUserAsync(
            TestUsers.Bob,
            Requirements.Python,
            ["-I", s.Dir.PathOf("flood.py"), "flood", .. target.Take(2), "--threads", "4", "--seconds", "4", "--hold", "0", .. target.Skip(2)],
            TimeSpan.FromSeconds(90));
        Assert.That(run.Succeeded, Is.True, run.Describe());
        using var output = JsonDocument.Parse(run.Stdout);
        var root = output.RootElement;
        var expected = target.Length > 2 ? "reset" : "421";
        Assert.That(root.GetProperty("greetings").EnumerateObject().Select(g => g.Name), Has.All.EqualTo(expected), $"{string.Join(" ", target)}: {run.Stdout}");
        return root.GetProperty("connections").GetInt32();
    }

    /// <summary>`status --json` as root over the control socket: activeSessions.</summary>
    private static async Task<int> ActiveSessionsAsync(DaemonProcess daemon)
    {
        var status = await ProcessRunner.RunAsync(
            DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "status", "--json", "--config", daemon.ConfigPath], TimeSpan.FromSeconds(60), cleanEnvironment: true);
        Assert.That(status.Succeeded, Is.True, status.Describe());
        using var json = JsonDocument.Parse(status.Stdout);
        return json.RootElement.GetProperty("activeSessions").GetInt32();
    }
}
