using System.Diagnostics;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Automatic suspension: a burst of quota refusals, or an upstream that rejects most of one user's mail, puts the
/// user into the kernel's suspended set. From then on the kernel refuses her connections (a TCP reset): the fake MX
/// and the daemon see nothing, the rule's counter goes up, other users are unaffected, and the alert command ran
/// with the facts in its environment.
/// </summary>
[TestFixture]
[NonParallelizable] // her connection greeted within a second of unblock
[CancelAfter(120_000)]
public sealed class SuspensionPolicyTests
{
    private const string RejectingRecipient = "nosuchuser@example.test";

    [Test]
    public async Task A_burst_of_quota_refusals_suspends_her_in_the_kernel_and_unblock_lets_her_in_again()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var alertFile = s.Dir.PathOf("alert.env");
        // Reuse off: "unseen by the MX" below is counted in upstream connections, one per session.
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(
            ("Relay.ReuseConnections", false),
            ("Limits.Default.MessagesPerHour", 1),
            ("Suspension.RefusalLimit", 3),
            ("Alerts.Command", AlertCommand(alertFile))));
        var alice = TestUsers.Alice;
        string Context() => "\n" + daemon.Transcript() + s.Describe();

        AssertDelivered(await SendAsync(s, alice, "allowed"), Context());
        var refusals = new List<DialogResult>();
        for (var i = 1; i <= 3; i++)
        {
            refusals.Add(await SendAsync(s, alice, $"over-{i}"));
        }

        var alert = await WaitForAlertAsync(alertFile, TimeSpan.FromSeconds(10));
        var suspended = await WaitForSuspendedAsync(s.Ns, alice.Uid, suspended: true, TimeSpan.FromSeconds(5));
        Assert.Multiple(() =>
        {
            foreach (var refusal in refusals)
            {
                Assert.That(ReplyLine(refusal, "MAIL"), Does.StartWith("451 4.7.1 hourly message quota for user smtpi-alice exhausted (1/1)"), refusal.Describe());
            }

            Assert.That(suspended, Does.Contain(alice.Uid), "after 3 refusals alice is in suspended_uids" + Context());
            Assert.That(alert, Is.Not.Null, "the alert command ran" + Context());
        });
        Assert.Multiple(() =>
        {
            Assert.That(alert!.GetValueOrDefault("SMTPI_UID"), Is.EqualTo(alice.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(alert.GetValueOrDefault("SMTPI_USER"), Is.EqualTo(alice.Name));
            Assert.That(alert.GetValueOrDefault("SMTPI_REASON"), Does.Contain("3 quota refusals"));
            Assert.That(alert.GetValueOrDefault("SMTPI_SOURCE"), Is.EqualTo("automatic"));
            Assert.That(alert.GetValueOrDefault("SMTPI_MESSAGES_HOUR"), Is.EqualTo("1"), "the counts: one message delivered this hour");
        });

        // Her next connection: refused by the kernel, unseen by the daemon and the MX, counted by the rule.
        await Task.Delay(300);
        var counterBefore = await NftTable.RuleCounterAsync(s.Ns, NftTable.SuspendedRule);
        var mxConnectionsBefore = s.RequireMx.ConnectionCount;
        var linesAboutHerBefore = LinesAbout(daemon, alice);
        var probe = await TcpProbe.ConnectAsync(s.Ns, alice, "127.0.0.2", 25);
        var probe6 = await TcpProbe.ConnectAsync(s.Ns, alice, NetworkNamespace.MxAddress6, 25);
        var smtplib = await Clients.SmtplibAsync(s.Ns, alice, s.Dir, Mx, "alice@client.test", [To], TestMessage.Small("alice@client.test", To, "while-suspended"));
        await Task.Delay(500);
        var counterAfter = await NftTable.RuleCounterAsync(s.Ns, NftTable.SuspendedRule);
        var mxConnectionsAfter = s.RequireMx.ConnectionCount;
        var linesAboutHerAfter = LinesAbout(daemon, alice);
        var bob = await SendAsync(s, TestUsers.Bob, "bob-meanwhile");

        Assert.Multiple(() =>
        {
            Assert.That(probe.Refused, Is.True, "ConnectionRefusedError at TCP level\n" + probe);
            Assert.That(smtplib.Stdout, Does.Contain("ConnectionRefusedError"), smtplib.Describe());
            Assert.That(probe6.Refused, Is.True, "over IPv6 too\n" + probe6);
            Assert.That(counterAfter, Is.GreaterThanOrEqualTo(counterBefore + 3), "the suspended-users rule counts the three attempts");
            Assert.That(mxConnectionsAfter, Is.EqualTo(mxConnectionsBefore), "the fake MX saw no new connection" + Context());
            Assert.That(linesAboutHerAfter, Is.EqualTo(linesAboutHerBefore), "the daemon logged nothing about her" + Context());
            Assert.That(bob.Reply("BODY")?.Code, Is.EqualTo(250), "bob is unaffected\n" + bob.Describe());
        });

        // Unblocked by the admin: her very next connection is intercepted again, within a second.
        var unblock = await CliAsync(s.Ns, daemon, "unblock", alice.Name);
        var clock = Stopwatch.StartNew();
        var again = await TcpProbe.ConnectAsync(s.Ns, alice, "127.0.0.2", 25);
        var greetedAfter = clock.Elapsed;
        var quota = await SendAsync(s, alice, "after-unblock");
        Assert.Multiple(() =>
        {
            Assert.That(unblock.Succeeded, Is.True, unblock.Describe());
            Assert.That(again.Greeting, Does.StartWith("220 "), again.ToString());
            Assert.That(greetedAfter, Is.LessThan(TimeSpan.FromSeconds(1)), "greeted within a second of unblock");
            Assert.That(ReplyLine(quota, "MAIL"), Does.StartWith("451 4.7.1 hourly message quota for user smtpi-alice exhausted (1/1)"),
                "her quota still applies, and the old refusals do not suspend her again\n" + quota.Describe());
        });
        Assert.That(await NftTable.SuspendedUidsAsync(s.Ns), Does.Not.Contain(alice.Uid), Context());
    }

    [Test]
    public async Task An_upstream_that_rejects_her_messages_after_the_final_dot_gets_her_suspended()
    {
        var script = new FakeMxScript { FinalReply = "550 5.7.1 message rejected as spam" };
        await using var s = await Scenario.StartAsync(script, startDaemon: false);
        var alertFile = s.Dir.PathOf("alert.env");
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, FailureConfig(alertFile));
        await AssertSuspendedAfterFourRejectionsAsync(s, daemon, alertFile, "BODY", recipient: To);
    }

    /// <summary>
    /// The most common way big providers refuse spam is 5xx at RCPT: a message whose every recipient the upstream
    /// refused counts as rejected towards the failure ratio, although the client then leaves or says RSET.
    /// </summary>
    [Test]
    public async Task An_upstream_that_rejects_all_her_recipients_gets_her_suspended()
    {
        var script = new FakeMxScript
        {
            RcptReplies = new Dictionary<string, string> { [RejectingRecipient] = $"550 5.1.1 <{RejectingRecipient}>: Recipient address rejected: User unknown" },
        };
        await using var s = await Scenario.StartAsync(script, startDaemon: false);
        var alertFile = s.Dir.PathOf("alert.env");
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, FailureConfig(alertFile));
        await AssertSuspendedAfterFourRejectionsAsync(s, daemon, alertFile, "RCPT " + RejectingRecipient, recipient: RejectingRecipient);
    }

    // Reuse off: the check that only bob's session reached the MX counts upstream connections, one per session.
    private static DaemonConfig FailureConfig(string alertFile) => Config(
        ("Relay.ReuseConnections", false),
        ("Suspension.FailureMinimum", 4),
        ("Suspension.FailureRatioPercent", 75),
        ("Alerts.Command", AlertCommand(alertFile)));

    /// <summary>Three rejected messages: not yet (below the minimum). The fourth: suspended, alerted, refused by the kernel.</summary>
    private static async Task AssertSuspendedAfterFourRejectionsAsync(Scenario s, DaemonProcess daemon, string alertFile, string rejectedStep, string recipient)
    {
        var alice = TestUsers.Alice;
        string Context() => "\n" + daemon.Transcript() + s.Describe();
        for (var i = 1; i <= 3; i++)
        {
            var rejected = await SendAsync(s, alice, $"rejected-{i}", [recipient]);
            Assert.That(rejected.Reply(rejectedStep)?.Code, Is.EqualTo(550), "the upstream's 550 is relayed\n" + rejected.Describe());
        }

        var notYet = await NftTable.SuspendedUidsAsync(s.Ns);
        var fourth = await SendAsync(s, alice, "rejected-4", [recipient]);
        var alert = await WaitForAlertAsync(alertFile, TimeSpan.FromSeconds(3));
        var suspended = await WaitForSuspendedAsync(s.Ns, alice.Uid, suspended: true, TimeSpan.FromSeconds(3));
        var mxConnections = s.RequireMx.ConnectionCount;
        var probe = await TcpProbe.ConnectAsync(s.Ns, alice, "127.0.0.2", 25);
        var bob = await SendAsync(s, TestUsers.Bob, "bob-meanwhile");

        Assert.Multiple(() =>
        {
            Assert.That(fourth.Reply(rejectedStep)?.Code, Is.EqualTo(550), fourth.Describe());
            Assert.That(notYet, Does.Not.Contain(alice.Uid), "3 rejections are below Suspension.FailureMinimum=4" + Context());
            Assert.That(suspended, Does.Contain(alice.Uid), "4 of 4 rejected (>= 75 %) suspends her" + Context());
            Assert.That(probe.Refused, Is.True, "the kernel refuses her next connection\n" + probe);
            Assert.That(s.RequireMx.ConnectionCount, Is.EqualTo(mxConnections + 1), "only bob's session reached the MX" + Context());
            Assert.That(bob.Reply("DATA")?.Code, Is.EqualTo(354), "bob is not suspended\n" + bob.Describe());
            Assert.That(alert, Is.Not.Null, "the alert command ran" + Context());
        });
        Assert.Multiple(() =>
        {
            Assert.That(alert!.GetValueOrDefault("SMTPI_UID"), Is.EqualTo(alice.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(alert.GetValueOrDefault("SMTPI_USER"), Is.EqualTo(alice.Name));
            Assert.That(alert.GetValueOrDefault("SMTPI_REASON"), Does.Contain("4 of 4"));
            Assert.That(alert.GetValueOrDefault("SMTPI_SOURCE"), Is.EqualTo("automatic"));
            Assert.That(alert.GetValueOrDefault("SMTPI_MESSAGES_HOUR"), Is.EqualTo("0"), "the counts: nothing was delivered");
        });
    }
}
