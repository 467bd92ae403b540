using System.Globalization;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// tests/HOSTILE.md, "Replies to port 25": a customer listens on a port, one SYN arrives from the mail server's port 25
/// (spoofed, from anywhere that does not filter sources), and the customer connects from that port to the mail server.
/// To conntrack that connection is the reply of the first one, so no NAT rule ever sees it; without the guard's two rules
/// for it (RulesetRenderer.Guard.cs) it reaches the mail server directly. Here the "mail server" is the fake MX on
/// 127.0.0.2:25 and the SYN comes from a raw socket of root's inside the namespace.
/// </summary>
[TestFixture]
[CancelAfter(90_000)]
public sealed partial class RepliesToSmtpPortTests
{
    private const int CustomerPort = 41025;

    [Test]
    public async Task A_customer_who_answers_a_packet_from_port_25_does_not_reach_the_mail_server_directly()
    {
        await using var s = await Scenario.StartAsync();
        var script = Path.Combine(TestDirectory.FixturesDirectory, "reply_from_port25.py");
        var port = CustomerPort.ToString(CultureInfo.InvariantCulture);

        // The same customer's plain connection is redirected: what the trick is meant to get around.
        var plain = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        Assert.That(plain.Greeting ?? "", Does.StartWith($"220 {DaemonConfig.TestHeloName}"), $"alice's plain connection reaches the daemon\n{plain}");

        var listening = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python, ["-I", script, "listen", port, "8"], TimeSpan.FromSeconds(30));
        Assert.That(await s.Ns.WaitForListenerAsync($"127.0.0.1:{port}", TimeSpan.FromSeconds(10)), Is.True, "alice's listener did not start");

        var syn = await s.Ns.RunAsync(Requirements.Python, ["-I", script, "syn", NetworkNamespace.MxAddress4, "25", "127.0.0.1", port]);
        Assert.That(syn.Succeeded, Is.True, syn.Describe());

        var back = await s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python, ["-I", script, "connect", port, NetworkNamespace.MxAddress4, "25"], TimeSpan.FromSeconds(30));
        var guard = await s.Ns.RunAsync("nft", ["list", "table", "inet", NftTable.Name + "_guard"]);
        await listening;

        var context = $"\n{back.Describe()}\n{guard.Stdout}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(back.Stdout, Does.Not.Contain("fake-mx"), "alice reached the mail server directly" + context);
            Assert.That(back.Stdout, Does.Contain("\"outcome\": \"timeout\""), "the connection's SYN is dropped" + context);
            Assert.That(Counted(guard.Stdout, "ct direction reply"), Is.GreaterThan(0), "the listener's answer to port 25 is refused" + context);
            Assert.That(Counted(guard.Stdout, "ct state invalid"), Is.GreaterThan(0), "the connection's SYN is dropped as invalid" + context);
        });
    }

    /// <summary>The packets counted by the guard's rule containing <paramref name="match"/>.</summary>
    private static long Counted(string listing, string match)
    {
        var line = listing.Split('\n').FirstOrDefault(l => l.Contains(match, StringComparison.Ordinal)) ?? "";
        var packets = PacketsCounted().Match(line);
        return packets.Success ? long.Parse(packets.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    [GeneratedRegex(@"counter packets (\d+)")]
    private static partial Regex PacketsCounted();
}
