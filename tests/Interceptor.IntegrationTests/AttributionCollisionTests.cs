using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12.2: when NAT moves a redirected connection to another client port P' (the client reused its port
/// towards a second MX), the exact sock_diag lookup of P' misses, and the kernel answers it with whatever
/// listens on P'. Here the victim (alice) listens on nearly every port NAT can pick, and the attacker (bob)
/// forces remaps: no message may be stamped or charged to alice.
/// </summary>
/// <remarks>
/// NAT picks P' from 600-1023 for a client port in 512-1023 (from 1024-65535 otherwise), so the namespace lets
/// unprivileged users bind from 600 (net.ipv4.ip_unprivileged_port_start, per namespace): alice holds every port
/// of 600-1023 except bob's 960-999, and about nine remaps in ten land on one of hers. On a real host the same
/// happens with ports above 1024, in proportion to the ports the victim holds (5 of 100 in the report).
/// </remarks>
[TestFixture]
[CancelAfter(240_000)]
public sealed class AttributionCollisionTests
{
    private const string FirstMx = "127.0.0.2:25";
    private const string BobPorts = "960-999";
    private const string From = "bob@client.test";
    private const string To = "rcpt@example.test";
    private const string ClaimedSockets = "smtpi_attributed_client_sockets";

    /// <param name="secondMx">Another MX, or the local MTA (127.0.0.1:25, permitted by default), as in the report.</param>
    [TestCase("127.0.0.3:25")]
    [TestCase("127.0.0.1:25")]
    public Task Remapped_port_landing_on_another_users_listener_is_never_attributed_to_that_user(string secondMx) =>
        AttackAsync(secondMx, Victim.Listeners);

    /// <summary>
    /// The same attack against an exempt user (root here; the local MTA on a real host) whose own direct connections to
    /// the second MX sit on the ports NAT can pick: the remapped connection then has exactly the 4-tuple of one of
    /// them, so the exact lookup finds a connected socket with the right addresses and ports — the exempt user's,
    /// which the table never redirects, so it cannot be the client (fixed after 12.2 by <c>RedirectScope</c>).
    /// </summary>
    [TestCase("127.0.0.3:25")]
    public Task Remapped_port_landing_on_an_exempt_users_direct_connection_to_the_same_mx_is_never_attributed_to_it(string secondMx) =>
        AttackAsync(secondMx, Victim.ExemptConnections);

    /// <summary>
    /// The same attack against a customer's own live redirected sessions to the second MX whose ports NAT had moved (so
    /// no reply tuple holds their sockets' ports, and NAT may pick them for bob): the exact lookup then finds her
    /// connected socket, redirected, not exempt, with exactly the 4-tuple asked for. The daemon serves that socket's
    /// own connection already, so it cannot be the client of another (<c>ClientSocketClaims</c>): conntrack is asked.
    /// </summary>
    [TestCase("127.0.0.3:25")]
    public Task Remapped_port_landing_on_another_customers_live_moved_session_to_the_same_mx_is_never_attributed_to_her(string secondMx) =>
        AttackAsync(secondMx, Victim.MovedSessions);

    /// <summary>
    /// The same attack against sockets no session holds and that were never redirected: alice's service on each port
    /// has accepted a connection from the second MX's own address and port 25 (a host of hers whose MTA connects out
    /// from port 25). Bob's connection moved onto such a port shows exactly that socket's 4-tuple, established, owned
    /// by a redirected customer. Only conntrack, asked for every connection, names bob's own port.
    /// </summary>
    [TestCase("127.0.0.4:25")]
    public Task Remapped_port_landing_on_a_customers_service_connected_from_the_mxs_port_25_is_never_attributed_to_her(string secondMx) =>
        AttackAsync(secondMx, Victim.ServiceConnections);

    public enum Victim
    {
        /// <summary>alice listening on 600-1023.</summary>
        Listeners,

        /// <summary>root's direct (exempt) connections from 600-1023 to the second MX.</summary>
        ExemptConnections,

        /// <summary>alice's redirected sessions from 600-759 to the second MX, each moved by NAT.</summary>
        MovedSessions,

        /// <summary>alice listening on 600-1023, each listener with a connection accepted from the second MX's address
        /// and port.</summary>
        ServiceConnections,
    }

    private static async Task AttackAsync(string secondMx, Victim kind)
    {
        IReadOnlyList<string> mxes = [FirstMx, secondMx];
        // The attack opens its connections as fast as it can: the kernel's connection rate (issue 19) is off, so what is
        // tested is attribution, not the rate limit. Alice's moved sessions are two connections a port for a moment.
        var config = new DaemonConfig
        {
            PermittedLocalDestinations = mxes,
            Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?>
            {
                ["Limits.Default.ConnectionsPerSecond"] = 0, ["Limits.Default.Connections"] = 1000, ["Metrics.Listen"] = "127.0.0.1:9325",
            },
        };
        await using var s = await Scenario.StartAsync(config: config, mxListen: mxes);
        var sysctl = await s.Ns.RunAsync("sysctl", ["-w", "net.ipv4.ip_unprivileged_port_start=600"]);
        Assert.That(sysctl.Succeeded, Is.True, sysctl.Describe());

        // The victim's sockets on the ports NAT picks from, for the whole test: alice's listeners, root's (exempt)
        // connections straight to the second MX, or alice's redirected sessions there. Those leave their first
        // connections (to the first MX) in conntrack's TIME_WAIT, which holds the very ports NAT should pick: the
        // namespace's timeout is shortened to 3 s and the test waits for it (bob's own attempts need 1 s at most).
        var alice = TestUsers.Alice;
        var (victimUid, victimName) = kind == Victim.ExemptConnections ? (0u, "root") : (alice.Uid, alice.Name);
        List<string> holdPorts = kind == Victim.MovedSessions
            ? [Requirements.Python, "-I", s.Dir.PathOf("hold_ports.py"), "--from", "600", "--to", "759", "--connect", secondMx, "--moved-by", FirstMx]
            : [Requirements.Python, "-I", s.Dir.PathOf("hold_ports.py"), "--from", "600", "--to", "1023", "--skip", BobPorts, .. kind == Victim.ServiceConnections ? ["--accept"] : Array.Empty<string>()];
        if (kind == Victim.MovedSessions)
        {
            var timeWait = await s.Ns.RunAsync("sysctl", ["-w", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=3"]);
            Assert.That(timeWait.Succeeded, Is.True, timeWait.Describe());
        }

        await using var victim = kind == Victim.ExemptConnections
            ? s.Ns.StartBackground("root-connections", holdPorts[0], [.. holdPorts.Skip(1), "--connect", secondMx])
            : s.Ns.StartBackground(
                "alice-sockets",
                "setpriv",
                ["--reuid=" + alice.Uid.ToString(CultureInfo.InvariantCulture), "--regid=" + alice.Gid.ToString(CultureInfo.InvariantCulture), "--clear-groups", .. holdPorts]);
        var heldLine = await victim.WaitForLineAsync(l => l.Contains("\"held\"", StringComparison.Ordinal), TimeSpan.FromSeconds(120));
        Assert.That(heldLine, Is.Not.Null, $"{victimName}'s sockets did not come up\n" + victim.Transcript() + s.Describe());
        using var held = JsonDocument.Parse(heldLine!.Text);
        var victimPorts = held.RootElement.GetProperty("held").EnumerateArray().Select(p => p.GetInt32()).ToHashSet();
        Assert.That(victimPorts, Has.Count.GreaterThan(kind == Victim.MovedSessions ? 140 : 350), $"{victimName} must hold most of the ports asked for\n" + heldLine);
        if (kind == Victim.MovedSessions)
        {
            await Task.Delay(TimeSpan.FromSeconds(5));
        }

        await using var remoteMta = kind == Victim.ServiceConnections
            ? s.Ns.StartBackground("mx-port-25", holdPorts[0], [.. holdPorts.Skip(1).Where(a => a != "--accept"), "--connect", "127.0.0.1", "--source", secondMx])
            : null;
        if (remoteMta is not null)
        {
            var connectedLine = await remoteMta.WaitForLineAsync(l => l.Contains("\"held\"", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            Assert.That(connectedLine, Is.Not.Null, "the MX's port 25 did not connect to her services\n" + remoteMta.Transcript());
            using var connected = JsonDocument.Parse(connectedLine!.Text);
            victimPorts.IntersectWith(connected.RootElement.GetProperty("held").EnumerateArray().Select(p => p.GetInt32()));
            Assert.That(victimPorts, Has.Count.GreaterThan(350), "her services each accepted a connection from the MX's port 25\n" + connectedLine);
            await Task.Delay(TimeSpan.FromSeconds(1)); // her accept loop takes them
        }

        // The attacker forces one remap per port of its range and sends a message over each remapped connection.
        var message = TestMessage.Small(From, To, "remap-collision");
        var body = Clients.WriteStuffedBody(s.Dir, message);
        var run = await s.Ns.RunAsUserAsync(
            TestUsers.Bob,
            Requirements.Python,
            ["-I", s.Dir.PathOf("port_remap.py"), "--first", FirstMx, "--second", secondMx, "--from", From, "--to", To, "--body", body, "--ports", BobPorts],
            TimeSpan.FromSeconds(180));
        Assert.That(run.Succeeded, Is.True, run.Describe() + s.Describe());
        using var output = JsonDocument.Parse(run.Stdout);
        var attempts = output.RootElement.GetProperty("attempts").EnumerateArray().ToList();
        var greetings = attempts.Select(a => a.TryGetProperty("second_greeting", out var g) ? g.GetString() ?? "" : "").ToList();
        var errors = attempts.Where(a => a.TryGetProperty("error", out _)).Select(a => a.GetRawText()).ToList();
        Assert.That(errors, Is.Empty, "every attempt must bind its port and connect");

        var relayed = s.RequireMx.Messages().Where(m => m.RcptTo.Contains(To)).ToList();
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(greetings.Count(g => g.StartsWith("220", StringComparison.Ordinal)));
        var headers = relayed.Select(m => TraceHeader.TryParse(m.FirstLine)).ToList();
        var stampedAlice = headers.Count(h => h?.Uid == victimUid);
        var chargedAlice = transactions.Count(t => t.Uid == victimUid);
        Assert.Multiple(() =>
        {
            Assert.That(stampedAlice, Is.Zero, $"{stampedAlice} of {relayed.Count} relayed messages were stamped uid={victimUid} user={victimName}" + s.Describe());
            Assert.That(chargedAlice, Is.Zero, $"{chargedAlice} of {transactions.Count} transactions were charged to {victimName}");
        });

        // Every relayed message says bob; every connection not greeted was refused as of unknown origin.
        Assert.Multiple(() =>
        {
            Assert.That(headers, Has.All.Not.Null, "every relayed message starts with a trace header");
            Assert.That(headers.Select(h => h?.Uid), Has.All.EqualTo(TestUsers.Bob.Uid), "trace header uid");
            Assert.That(transactions.Select(t => t.Uid), Has.All.EqualTo(TestUsers.Bob.Uid), "transaction uid");
            Assert.That(greetings.Where(g => !g.StartsWith("220", StringComparison.Ordinal)), Has.All.StartWith("421 4.3.0"), "a refusal is 421 4.3.0");
        });

        // The attack really happened: NAT put bob's connections on alice's ports, and the daemon found bob by conntrack.
        var landedOnAlice = s.RequireDaemon.LogLines()
            .Where(l => l.Message.Contains("moved by NAT", StringComparison.Ordinal))
            .Count(l => int.TryParse(l.StateString("ShownPort"), CultureInfo.InvariantCulture, out var shown) && victimPorts.Contains(shown));
        var greeted = greetings.Count(g => g.StartsWith("220", StringComparison.Ordinal));
        TestContext.Out.WriteLine($"{attempts.Count} remapped connections, {landedOnAlice} landed on a port {victimName} holds; {greeted} greeted, {relayed.Count} relayed as bob");
        // Alice's moved sessions leave fewer of the ports NAT picks from to her (their own moved ports take ~160 of 424).
        var enough = kind == Victim.MovedSessions ? attempts.Count / 4 : attempts.Count / 2;
        Assert.That(landedOnAlice, Is.GreaterThanOrEqualTo(enough), $"enough remaps must land on {victimName}'s ports, else this test proves nothing");
        Assert.That(relayed, Has.Count.EqualTo(greeted), "each greeted connection relays its message");
        if (kind is Victim.MovedSessions or Victim.ServiceConnections)
        {
            // Conntrack names bob behind each of them: none is refused for landing on a socket of hers.
            Assert.That(greeted, Is.EqualTo(attempts.Count), "every remapped connection of bob's is greeted\n" + string.Join("\n", greetings));
        }

        if (kind != Victim.MovedSessions)
        {
            return;
        }

        // Each of alice's live sessions holds its client socket; they give them back when they end, as bob's did.
        Assert.That(await ClaimedSocketsReachAsync(s, victimPorts.Count), Is.True, "one claim per live session of hers, none left of bob's");
        await victim.DisposeAsync();
        Assert.That(await ClaimedSocketsReachAsync(s, 0), Is.True, "every claim given back once alice's sessions ended");
    }

    private static async Task<bool> ClaimedSocketsReachAsync(Scenario s, int expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var (samples, text) = await ObservabilityPolicyTests.ScrapeAsync(s);
            if (samples.GetValueOrDefault(ClaimedSockets, -1) == expected)
            {
                return true;
            }

            if (DateTime.UtcNow > deadline)
            {
                TestContext.Out.WriteLine($"{ClaimedSockets} never reached {expected}:\n{text}");
                return false;
            }

            await Task.Delay(200);
        }
    }
}
