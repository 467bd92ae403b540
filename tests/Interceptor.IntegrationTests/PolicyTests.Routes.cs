using System.Globalization;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The exceptions a real host needs, in the kernel: a per-user allowed destination (Routes.Users) bypasses the daemon
/// for that user and that address:port only; a blocked port (Interception.BlockedPorts) is refused to every
/// non-exempt user while root still gets through.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class RoutingPolicyTests
{
    private const string Route = "127.0.0.2:2525";

    [Test]
    public async Task An_allowed_route_bypasses_the_daemon_for_that_user_and_that_address_and_port_only()
    {
        var config = Config(("Routes.Users.smtpi-alice", new JsonArray(Route))) with
        {
            Ports = [25, 2525],
            PermittedLocalDestinations = [.. FakeMx.DefaultListen, Route],
        };
        await using var s = await Scenario.StartAsync(config: config, mxListen: [.. FakeMx.DefaultListen, Route]);
        var alice = TestUsers.Alice;
        var bob = TestUsers.Bob;
        var direct = TestMessage.Small("alice@client.test", To, "alice-route");
        var bobsMessage = TestMessage.Small("bob@client.test", To, "bob-2525");
        var intercepted = TestMessage.Small("alice@client.test", To, "alice-25");

        var aliceDirect = await Clients.SwaksAsync(s.Ns, alice, s.Dir, Route, "alice@client.test", To, direct);
        // Give a (wrongly) intercepting daemon time to log, so "no transaction" means something.
        await Task.Delay(500);
        var transactionsAfterDirect = s.RequireDaemon.Transactions();
        var bobIntercepted = await Clients.SwaksAsync(s.Ns, bob, s.Dir, Route, "bob@client.test", To, bobsMessage);
        var aliceIntercepted = await Clients.SwaksAsync(s.Ns, alice, s.Dir, Mx, "alice@client.test", To, intercepted);
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(2);
        var routes = await NftTable.ListAsync(s.Ns, "set", "inet", NftTable.Name, "allowed_routes_v4");

        Assert.Multiple(() =>
        {
            Assert.That(aliceDirect.Succeeded, Is.True, aliceDirect.Describe() + s.Describe());
            Assert.That(bobIntercepted.Succeeded, Is.True, bobIntercepted.Describe() + s.Describe());
            Assert.That(aliceIntercepted.Succeeded, Is.True, aliceIntercepted.Describe() + s.Describe());
            Assert.That(transactionsAfterDirect, Is.Empty, "alice's routed connection never reached the daemon" + s.Describe());
            Assert.That(routes, Does.Contain($"{alice.Uid.ToString(CultureInfo.InvariantCulture)} . 127.0.0.2 . 2525"), routes);
        });

        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(3), s.Describe());
        TestMessage.AssertSameBytes(direct, messages[0].Bytes, " (alice to the allowed route: direct, no trace header)");
        TraceHeader.AssertPrepended(messages[1], bob, bobsMessage, " (bob to 127.0.0.2:2525 is intercepted)" + s.Describe());
        TraceHeader.AssertPrepended(messages[2], alice, intercepted, " (alice to 127.0.0.2:25 is still intercepted)" + s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(transactions.Select(t => (t.User, t.OriginalDestination)), Is.EqualTo(new[] { (bob.Name, Route), (alice.Name, Mx) }), s.Describe());
            // The direct session came from alice's own socket, the other two from the daemon's.
            Assert.That(MxSessionUsers(s), Is.EqualTo(new[] { "direct", "daemon", "daemon" }), s.Describe());
        });
    }

    [Test]
    public async Task A_blocked_port_is_refused_to_customers_over_ipv4_and_ipv6_and_root_still_reaches_it()
    {
        const string Blocked6 = "[2001:db8::25]:465";
        await using var s = await Scenario.StartAsync(
            config: Config(("Interception.BlockedPorts", new JsonArray(465))),
            mxListen: [.. FakeMx.DefaultListen, "127.0.0.2:465", Blocked6]);
        var counterBefore = await NftTable.RuleCounterAsync(s.Ns, NftTable.BlockedPortsRule);

        var alice4 = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, "127.0.0.2", 465);
        var alice6 = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, "2001:db8::25", 465);
        var bob = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Bob, "127.0.0.2", 465);
        var mxConnectionsAfterCustomers = s.RequireMx.ConnectionCount;
        var root = await TcpProbe.ConnectAsync(s.Ns, null, "127.0.0.2", 465);
        var counterAfter = await NftTable.RuleCounterAsync(s.Ns, NftTable.BlockedPortsRule);
        var aliceOn25 = await SendAsync(s, TestUsers.Alice, "still-on-25");

        Assert.Multiple(() =>
        {
            Assert.That(alice4.Refused, Is.True, alice4.ToString());
            Assert.That(alice6.Refused, Is.True, alice6.ToString());
            Assert.That(bob.Refused, Is.True, bob.ToString());
            Assert.That(mxConnectionsAfterCustomers, Is.Zero, "no customer connection reached the listener on 465" + s.Describe());
            Assert.That(root.Greeting, Does.StartWith("220 fake-mx.test"), "root is exempt and reaches the listener directly\n" + root);
            Assert.That(counterAfter - counterBefore, Is.EqualTo(3), "the blocked-port rule counts the three refusals, not root");
            Assert.That(aliceOn25.Reply("BODY")?.Code, Is.EqualTo(250), "port 25 is still intercepted and relayed\n" + aliceOn25.Describe());
        });
    }

    /// <summary>For each fake MX session in order: "direct" when the client's EHLO was the customer's, "daemon" when it was our HeloName.</summary>
    private static IReadOnlyList<string> MxSessionUsers(Scenario s) =>
        [.. s.RequireMx.Messages().Select(m => m.Helo == DaemonConfig.TestHeloName ? "daemon" : m.Helo == "client.test" ? "direct" : "unknown: " + m.Helo)];
}
