using System.Globalization;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// tests/HOSTILE.md 12.12: a customer's SYN that conntrack files under a connection it already has is never seen by a NAT
/// rule, so without the guard's two rules for it (RulesetRenderer.Guard.cs) it reaches the mail server directly. Both
/// tests fail against the rules without them (the customer gets the mail server's greeting). The "mail server" is on
/// 127.0.0.2:25 (the fake MX) or 127.0.0.3:25 (one that resets its connections); the forged SYN comes from a raw socket
/// of root's inside the namespace. The kernel's refusal is also named in the daemon's log (the guard's rules log to NFLOG).
/// </summary>
[TestFixture]
[CancelAfter(90_000)]
public sealed partial class StraySynTests
{
    // The test directory's copy: the build output may sit under a checkout the customers cannot read (/root, 0700).
    private static string Script(Scenario s) => s.Dir.PathOf("stray_syn.py");

    [Test]
    public async Task A_customer_who_answers_a_packet_forged_from_port_25_does_not_reach_the_mail_server_directly()
    {
        await using var s = await Scenario.StartAsync();
        const string port = "41025";

        // The same customer's plain connection is redirected: what the trick is meant to get around.
        var plain = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        Assert.That(plain.Greeting ?? "", Does.StartWith($"220 {DaemonConfig.TestHeloName}"), $"alice's plain connection reaches the daemon\n{plain}");

        var listening = s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python, ["-I", Script(s), "listen", port, "8"], TimeSpan.FromSeconds(30));
        Assert.That(await s.Ns.WaitForListenerAsync($"127.0.0.1:{port}", TimeSpan.FromSeconds(10)), Is.True, "alice's listener did not start");
        var syn = await s.Ns.RunAsync(Requirements.Python, ["-I", Script(s), "syn", NetworkNamespace.MxAddress4, "25", "127.0.0.1", port]);
        Assert.That(syn.Succeeded, Is.True, syn.Describe());

        var back = await ConnectAsync(s, TestUsers.Alice, port, NetworkNamespace.MxAddress4);
        var guard = await GuardAsync(s);
        var named = await NamedAsync(s, "stray_packet");
        await listening;

        var context = $"\n{back.Describe()}\n{guard}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(back.Stdout, Does.Not.Contain("fake-mx"), "alice reached the mail server directly" + context);
            Assert.That(back.Stdout, Does.Contain("\"outcome\": \"timeout\""), "her SYN is dropped" + context);
            Assert.That(Counted(guard, "ct state invalid"), Is.GreaterThan(0), "as invalid: the listener answered the forged SYN" + context);
            AssertNamesAlice(named, $"127.0.0.1:{port}", $"{NetworkNamespace.MxAddress4}:25", context);
        });
    }

    [Test]
    public async Task A_customer_who_reuses_the_port_of_a_connection_the_mail_server_reset_does_not_reach_it_directly()
    {
        await using var s = await Scenario.StartAsync();
        const string port = "41026";
        const string server = "127.0.0.3";
        await using var aborting = s.Ns.StartBackground("aborting-mx", Requirements.Python, ["-I", Script(s), "abort-server", server, "25", "20"]);
        Assert.That(await s.Ns.WaitForListenerAsync($"{server}:25", TimeSpan.FromSeconds(10)), Is.True, "the aborting mail server did not start");

        // Root is exempt: its connection goes out directly, and the server resets it. Conntrack keeps the entry 10 s.
        var root = await ConnectAsync(s, null, port, server, "until-reset");
        Assert.That(root.Stdout, Does.Contain("220 aborting.test").And.Contain("\"ended\": \"reset\""), "root reaches the server directly, which resets it\n" + root.Describe());

        var reused = await ConnectAsync(s, TestUsers.Alice, port, server);
        var guard = await GuardAsync(s);
        var named = await NamedAsync(s, "stray_syn");

        var context = $"\n{root.Describe()}\n{reused.Describe()}\n{guard}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(reused.Stdout, Does.Not.Contain("aborting.test"), "alice reached the mail server directly from root's old port" + context);
            Assert.That(reused.Stdout, Does.Contain("\"outcome\": \"refused\""), "her SYN is refused" + context);
            Assert.That(Counted(guard, "tcp flags syn / syn,ack"), Is.GreaterThan(0), "as a SYN of a connection conntrack has" + context);
            AssertNamesAlice(named, $"127.0.0.1:{port}", $"{server}:25", context);
        });
    }

    /// <summary>The daemon's first line about a refusal of <paramref name="cause"/> (StrayPacketLog, through NFLOG), or null.</summary>
    private static async Task<DaemonLogLine?> NamedAsync(Scenario s, string cause)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (s.RequireDaemon.LogLines().FirstOrDefault(l => l.StateString("Cause") == cause) is { } line)
            {
                return line;
            }

            await Task.Delay(100);
        }

        return null;
    }

    // The kernel's refusal, named: the customer who tried, from which port, to which mail server.
    private static void AssertNamesAlice(DaemonLogLine? line, string client, string destination, string context)
    {
        Assert.That(line, Is.Not.Null, "the daemon names who tried (NFLOG)" + context);
        Assert.That(line!.StateString("Uid"), Is.EqualTo(TestUsers.Alice.Uid.ToString(CultureInfo.InvariantCulture)), line.Message + context);
        Assert.That(line.StateString("User"), Is.EqualTo(TestUsers.Alice.Name), line.Message);
        Assert.That(line.StateString("Client"), Is.EqualTo(client), line.Message);
        Assert.That(line.StateString("Destination"), Is.EqualTo(destination), line.Message);
    }

    [Test]
    public async Task With_its_nflog_group_taken_the_daemon_says_so_and_installs_the_guard_without_logging()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var ulogd = s.Ns.StartBackground("nflog-holder", Requirements.Python, ["-I", Script(s), "nflog-bind", "25", "60"]);
        var bound = await ulogd.WaitForLineAsync(l => l.StartsWith("bound", StringComparison.Ordinal) || l.StartsWith("errno", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.That(bound?.Text, Is.EqualTo("bound"), "the stand-in for ulogd holds group 25");

        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir);
        var plain = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress4, 25);
        var guard = await GuardAsync(s);
        var said = daemon.LogLines().FirstOrDefault(l => l.Message.StartsWith("the guard's refusals of packets that escaped the redirect are not attributed", StringComparison.Ordinal));

        var context = $"\n{guard}\n{daemon.Transcript()}";
        Assert.Multiple(() =>
        {
            Assert.That(plain.Greeting ?? "", Does.StartWith($"220 {DaemonConfig.TestHeloName}"), "the daemon runs and relays" + context);
            Assert.That(said?.Message, Does.Contain("NFLOG group 25: another process has bound it"), "and says why it cannot name" + context);
            Assert.That(guard, Does.Contain("tcp flags syn / syn,ack ct state established,related counter").And.Not.Contain(" log "), "its rules count without logging to someone else's group" + context);
        });
    }

    private static Task<ProcessResult> ConnectAsync(Scenario s, TestUser? user, string port, string host, params string[] options) =>
        s.Ns.RunAsUserAsync(user, Requirements.Python, ["-I", Script(s), "connect", port, host, "25", .. options], TimeSpan.FromSeconds(30));

    private static async Task<string> GuardAsync(Scenario s) =>
        (await s.Ns.RunAsync("nft", ["list", "table", "inet", NftTable.Name + "_guard"])).Stdout;

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
