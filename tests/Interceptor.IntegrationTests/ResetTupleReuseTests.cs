using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A client's reset leaves its conntrack entry in CLOSE, and the next connection on the same 4-tuple (a neighbour's, from
/// the same port to the same MX) has conntrack replace it with a new entry, NAT-ed onto the same shown port. When the daemon is behind (a
/// flood, a pause), its accept queue then holds the dead connection and the neighbour's live one with the same
/// addresses: asked about the dead one, conntrack and sock_diag answer with the neighbour's. The daemon must not
/// open a session in his name for a connection that is gone, nor let it hold his socket so that his own is refused.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class ResetTupleReuseTests
{
    private const string MxHost = "127.0.0.2";
    private const int ClientPort = 40123;
    private const string From = "bob@client.test";
    private const string To = "rcpt@example.test";

    [Test]
    public async Task A_connection_reset_in_the_accept_queue_is_refused_not_attributed_to_the_neighbour_on_its_tuple_whose_mail_goes_through()
    {
        // The MX greets slowly, so a session opened for the dead connection would still hold bob's socket when his own
        // connection is looked up.
        await using var s = await Scenario.StartAsync(script: new FakeMxScript { GreetingDelaySeconds = 1 });
        var script = s.Dir.PathOf("reset_reuse.py");
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "reset-tuple-reuse"));
        var bob = TestUsers.Bob;
        BackgroundProcess? neighbour = null;
        try
        {
            // Both connections reach the daemon's accept queue while it is stopped: alice's reset first, bob's after it.
            await s.RequireDaemon.WhileFrozenAsync(async () =>
            {
                var reset = await s.Ns.RunAsUserAsync(
                    TestUsers.Alice, Requirements.Python, ["-I", script, "reset", Port, MxHost, "25"], TimeSpan.FromSeconds(10));
                Assert.That(reset.Succeeded && reset.Stdout.Contains("\"reset\"", StringComparison.Ordinal), Is.True, reset.Describe());
                neighbour = s.Ns.StartBackground(
                    "bob-client",
                    "setpriv",
                    ["--reuid=" + bob.Uid.ToString(CultureInfo.InvariantCulture), "--regid=" + bob.Gid.ToString(CultureInfo.InvariantCulture), "--clear-groups",
                        Requirements.Python, "-I", script, "send", Port, MxHost, "25", From, To, body]);
                var connected = await neighbour.WaitForLineAsync(l => l.Contains("\"connected\"", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
                Assert.That(connected, Is.Not.Null, "bob's connection on the same tuple is established by the kernel\n" + neighbour.Transcript());
                return true;
            });

            var outcome = await neighbour!.WaitForLineAsync(l => l.Contains("\"greeting\"", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            Assert.That(outcome, Is.Not.Null, "bob's client never finished\n" + neighbour.Transcript() + s.Describe());
            using var replies = JsonDocument.Parse(outcome!.Text);
            var greeting = replies.RootElement.GetProperty("greeting").GetString();
            var final = replies.RootElement.TryGetProperty("final", out var f) ? f.GetString() : null;

            // The dead connection is refused for what it is, naming nobody; bob's own is served and stamped bob.
            var gone = s.RequireDaemon.LogLines().Where(l => l.StateString("Cause") == "client_gone").ToList();
            var relayed = s.RequireMx.Messages();
            Assert.Multiple(() =>
            {
                Assert.That(greeting, Does.StartWith("220"), "bob's connection is greeted, not refused for a socket a dead session holds" + s.Describe());
                Assert.That(final, Does.StartWith("250"), "bob's message is relayed");
                Assert.That(relayed.Select(m => TraceHeader.TryParse(m.FirstLine)?.Uid).ToList(), Is.EqualTo(new uint?[] { bob.Uid }), "one message, stamped bob");
                Assert.That(gone, Has.Count.EqualTo(1), "the reset connection is refused as client_gone");
                Assert.That(gone.Select(l => l.StateString("Uid")), Has.All.Null.Or.Not.EqualTo(bob.Uid.ToString(CultureInfo.InvariantCulture)), "nobody is named for it");
                Assert.That(s.RequireMx.ConnectionCount, Is.EqualTo(1), "only bob's session went upstream");
            });
        }
        finally
        {
            if (neighbour is not null)
            {
                await neighbour.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Connect-and-reset or connect-and-close, in a loop, while the daemon is behind: each client is gone before its
    /// connection is looked up (a reset one's conntrack entry lingers in CLOSE and its socket is freed; a closed one's
    /// socket is left to the kernel, held by nobody, or freed once its FIN is acknowledged with TCP_LINGER2 -1, resetting ours), so the
    /// lookups find nobody. Before, each was refused as <c>owner_unknown</c> at Warning, which the provider's owner-lookup
    /// alert watches (more than 2 in 10 minutes): any customer raised it at will.
    /// </summary>
    [Test]
    public async Task Connections_whose_client_left_before_the_daemon_looked_are_refused_as_client_gone_not_as_failed_owner_lookups()
    {
        var config = new DaemonConfig { Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["Metrics.Listen"] = MetricsListen } };
        await using var s = await Scenario.StartAsync(config: config);
        var script = s.Dir.PathOf("reset_reuse.py");
        (string How, string Host, string Port)[] targets =
        [
            .. Enumerable.Repeat(("reset", MxHost, "25"), Redirected), .. Enumerable.Repeat(("close", MxHost, "25"), Redirected),
            .. Enumerable.Repeat(("vanish", MxHost, "25"), Redirected),
            ("reset", ListenerHost, ListenerPort),
        ];
        await s.RequireDaemon.WhileFrozenAsync(async () =>
        {
            for (var i = 0; i < targets.Length; i++)
            {
                var port = (ClientPort + 1 + i).ToString(CultureInfo.InvariantCulture);
                var reset = await s.Ns.RunAsUserAsync(
                    TestUsers.Alice, Requirements.Python, ["-I", script, targets[i].How, port, targets[i].Host, targets[i].Port], TimeSpan.FromSeconds(10));
                Assert.That(reset.Succeeded, Is.True, reset.Describe());
            }

            return true;
        });

        var refused = await RefusalsOnceSettledAsync(s, targets.Length);
        var warnings = s.RequireDaemon.LogLines().Where(l => l.Category == "attribute" && l.LogLevel == "Warning").Select(l => l.Message).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(refused.GetValueOrDefault("client_gone"), Is.EqualTo(targets.Length), "every connection whose client left, the reset straight to the listener too");
            Assert.That(refused.GetValueOrDefault("owner_unknown"), Is.Zero, "no failed owner lookup to raise the alert");
            Assert.That(refused.GetValueOrDefault("not_redirected"), Is.Zero);
            Assert.That(warnings, Is.Empty, "nothing at Warning, nobody named");
            Assert.That(s.RequireMx.ConnectionCount, Is.Zero);
        });
    }

    private static async Task<Dictionary<string, double>> RefusalsOnceSettledAsync(Scenario s, int expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var (samples, text) = await ObservabilityPolicyTests.ScrapeAsync(s);
            var refused = samples
                .Where(p => p.Key.StartsWith("smtpi_connections_refused_total{reason=\"", StringComparison.Ordinal))
                .ToDictionary(p => p.Key["smtpi_connections_refused_total{reason=\"".Length..^2], p => p.Value, StringComparer.Ordinal);
            var settled = new[] { "client_gone", "owner_unknown", "not_redirected" }.Sum(r => refused.GetValueOrDefault(r));
            if (settled >= expected || DateTime.UtcNow > deadline)
            {
                TestContext.Out.WriteLine(text);
                return refused;
            }

            await Task.Delay(200);
        }
    }

    private const int Redirected = 3;
    private const string ListenerHost = "127.0.0.1";
    private const string ListenerPort = "24";
    private const string MetricsListen = "127.0.0.1:9325";

    private static string Port => ClientPort.ToString(CultureInfo.InvariantCulture);
}
