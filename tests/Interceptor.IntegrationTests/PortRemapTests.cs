using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A client that reuses its port towards a second MX while conntrack still tracks the first
/// connection makes the NAT move the second one to another port, so the daemon's exact sock_diag
/// lookup by the port it sees finds nothing. The daemon must recover the client's real port from
/// the conntrack entry and attribute the connection to the right user instead of refusing it.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class PortRemapTests
{
    private const string FirstMx = "127.0.0.2:25";
    private const string SecondMx = "127.0.0.3:25";
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Reused_client_port_moved_by_nat_is_attributed_through_conntrack_and_relayed()
    {
        IReadOnlyList<string> mxes = [FirstMx, SecondMx];
        var config = new DaemonConfig { PermittedLocalDestinations = mxes };
        await using var s = await Scenario.StartAsync(config: config, mxListen: mxes);
        var message = TestMessage.Small(From, To, "port-remap");
        var body = Clients.WriteStuffedBody(s.Dir, message);

        var run = await s.Ns.RunAsUserAsync(
            TestUsers.Alice,
            Requirements.Python,
            ["-I", s.Dir.PathOf("port_remap.py"), "--first", FirstMx, "--second", SecondMx, "--from", From, "--to", To, "--body", body],
            Clients.DefaultTimeout);

        Assert.That(run.Succeeded, Is.True, run.Describe() + s.Describe());
        using var output = JsonDocument.Parse(run.Stdout);
        var root = output.RootElement;
        var port = root.GetProperty("port").GetInt32();
        var replies = root.GetProperty("second_replies").EnumerateArray()
            .ToDictionary(r => r.GetProperty("label").GetString()!, r => r.GetProperty("reply").GetString()!);
        Assert.Multiple(() =>
        {
            Assert.That(root.GetProperty("first_greeting").GetString(), Does.StartWith("220"), run.Stdout + s.Describe());
            Assert.That(root.GetProperty("second_port").GetInt32(), Is.EqualTo(port), "the client socket itself keeps its port\n" + run.Stdout);
            Assert.That(root.GetProperty("second_greeting").GetString(), Does.StartWith("220"),
                "the remapped connection must be greeted, not refused as of unknown origin\n" + run.Stdout + s.Describe());
            Assert.That(replies.GetValueOrDefault("BODY"), Does.StartWith("250"), run.Stdout + s.Describe());
        });

        // The remap really happened: the daemon saw another port and said how it attributed the connection.
        var remapLines = s.RequireDaemon.LogLines().Where(l => l.Message.Contains("moved by NAT", StringComparison.Ordinal)).ToList();
        Assert.That(remapLines, Has.Count.EqualTo(1), "one 'moved by NAT' line" + s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(remapLines[0].StateString("Client"), Does.EndWith(":" + port.ToString(CultureInfo.InvariantCulture)), remapLines[0].Raw);
            Assert.That(remapLines[0].StateString("ShownPort"), Is.Not.EqualTo(port.ToString(CultureInfo.InvariantCulture)), remapLines[0].Raw);
            Assert.That(remapLines[0].StateString("Destination"), Is.EqualTo(SecondMx), remapLines[0].Raw);
        });

        // Attributed to alice and relayed to the second MX, exactly once.
        var relayed = s.RequireMx.Messages();
        Assert.That(relayed, Has.Count.EqualTo(1), "the fake MX must receive exactly one message" + s.Describe());
        TraceHeader.AssertPrepended(relayed[0], TestUsers.Alice, message, s.Describe());
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions, Has.Count.EqualTo(1), s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(transactions[0].Uid, Is.EqualTo(TestUsers.Alice.Uid), transactions[0].ToString());
            Assert.That(transactions[0].User, Is.EqualTo(TestUsers.Alice.Name), transactions[0].ToString());
            Assert.That(transactions[0].OriginalDestination, Does.Contain("127.0.0.3"), transactions[0].ToString());
        });
    }
}
