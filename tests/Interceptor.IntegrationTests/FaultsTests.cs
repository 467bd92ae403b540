using System.Diagnostics;
using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 4, faults: the daemon killed mid-DATA, its nft table deleted or flushed behind its back. Each in its own
/// namespace. nft missing or failing at start and an upstream that swallows SYNs: FaultsStartupTests; the gap
/// before the watchdog restores the table: FaultsTableGapTests.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed partial class FaultsTests
{
    private const string Mx = "127.0.0.2:25";
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private const string Table = NftTable.Name;

    [Test]
    public async Task Sigkill_in_the_middle_of_DATA_drops_the_client_relays_nothing_and_a_restarted_daemon_serves_at_once_with_rules_and_suspensions_intact()
    {
        var config = new DaemonConfig();
        await using var s = await Scenario.StartAsync(config: config);
        var block = await PolicyTestSupport.CliAsync(s.Ns, s.RequireDaemon, "block", TestUsers.Bob.Name, "--reason", "fault test");
        Assert.That(block.Succeeded, Is.True, block.Describe());
        var tableBefore = await NftTable.ListAsync(s.Ns, "table", "inet", Table);
        var flags = s.Dir.Subdirectory("flags", worldWritable: true);
        var midData = Path.Combine(flags, "mid-data");
        var client = new HostileDialog(Mx, timeoutSeconds: 30)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .SendAndRead("MAIL", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT", $"RCPT TO:<{To}>\r\n")
            .SendAndRead("DATA", "DATA\r\n")
            .Send("HALF", "Subject: killed mid-data\r\n\r\nfirst half of the body\r\n")
            .Mark("MID", midData)
            .ReadAll("AFTER")
            .RunAsync(s.Ns, TestUsers.Alice, s.Dir);
        for (var i = 0; i < 200 && !File.Exists(midData) && !client.IsCompleted; i++)
        {
            await Task.Delay(50);
        }

        // Let the half body reach the MX through the daemon, then kill it as the OOM killer would.
        await Task.Delay(300);
        var killedAt = Stopwatch.StartNew();
        await s.RequireDaemon.Process.SignalAsync("KILL");
        Assert.That(await s.RequireDaemon.Process.WaitForExitAsync(TimeSpan.FromSeconds(10)), Is.True, "SIGKILL ends the daemon");
        var alice = await client;
        var afterKill = killedAt.Elapsed.TotalSeconds;
        var tableWhileDown = await s.Ns.RunAsync("nft", ["list", "table", "inet", Table]);
        var aliceWhileDown = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, "127.0.0.2", 25);
        var mxMessagesAfterKill = s.RequireMx.Messages().Count;

        var restart = Stopwatch.StartNew();
        await using var second = await DaemonProcess.StartAsync(s.Ns, s.Dir, config);
        var ready = restart.Elapsed.TotalSeconds;
        var message = TestMessage.Small(From, To, "after-sigkill");
        var sent = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, Mx, From, [To], message);
        var served = restart.Elapsed.TotalSeconds;
        var bobAfter = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Bob, "127.0.0.2", 25);
        var suspended = await NftTable.SuspendedUidsAsync(s.Ns);
        var tableAfter = await NftTable.ListAsync(s.Ns, "table", "inet", Table);

        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"client saw the drop within {afterKill:F2} s of SIGKILL; restarted daemon ready after {ready:F2} s, first message delivered {served - ready:F2} s later"));
        var context = $"\n{alice.Describe()}\n{aliceWhileDown}\n{sent.Describe()}\n{second.Transcript()}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(alice.Reply("DATA")?.Code, Is.EqualTo(354), context);
            Assert.That(alice.Replies.Where(r => r.Label == "AFTER").Select(r => r.Code), Has.None.Not.Null, "no reply after the kill, certainly no 250" + context);
            Assert.That(HostileDialog.EndsClosed(alice), Is.True, "the client sees the connection drop" + context);
            Assert.That(mxMessagesAfterKill, Is.Zero, "the MX recorded no message from the killed transaction" + context);
            Assert.That(tableWhileDown.Succeeded, Is.True, "the table stays while the daemon is dead\n" + tableWhileDown.Describe());
            Assert.That(aliceWhileDown.Refused, Is.True, "fail closed: alice is refused while the daemon is down" + context);
            Assert.That(sent.Succeeded, Is.True, "the restarted daemon serves mail at once" + context);
            Assert.That(served - ready, Is.LessThan(5), context);
            Assert.That(suspended, Does.Contain(TestUsers.Bob.Uid), "bob's suspension survived the kill and the restart" + context);
            Assert.That(bobAfter.Refused, Is.True, "and the kernel still refuses him" + context);
            Assert.That(RuleLines(tableAfter), Is.EqualTo(RuleLines(tableBefore)), $"the same rules before and after\n{tableBefore}\n{tableAfter}");
        });
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), TestUsers.Alice, message, context);
    }

    [TestCase("delete")]
    [TestCase("flush")]
    public async Task A_table_deleted_or_flushed_behind_the_daemons_back_is_restored_within_the_verify_interval_and_logged(string how)
    {
        const int interval = 2;
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Interception.VerifyIntervalSeconds", interval)));
        var block = await PolicyTestSupport.CliAsync(s.Ns, s.RequireDaemon, "block", TestUsers.Bob.Name, "--reason", "watchdog test");
        Assert.That(block.Succeeded, Is.True, block.Describe());
        var before = await NftTable.ListAsync(s.Ns, "table", "inet", Table);

        var clock = Stopwatch.StartNew();
        var tamper = how == "delete"
            ? await s.Ns.RunAsync("nft", ["delete", "table", "inet", Table])
            : await s.Ns.RunAsync("nft", ["flush", "chain", "inet", Table, "output_nat"]);
        Assert.That(tamper.Succeeded, Is.True, tamper.Describe());
        string? restored = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(interval + 8))
        {
            var listing = await s.Ns.RunAsync("nft", ["list", "table", "inet", Table]);
            if (listing.Succeeded && RuleLines(listing.Stdout).SequenceEqual(RuleLines(before)))
            {
                restored = listing.Stdout;
                break;
            }

            await Task.Delay(100);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"table {(how == "delete" ? "deleted" : "flushed")}: restored after {seconds:F2} s (Interception.VerifyIntervalSeconds={interval})"));
        var message = TestMessage.Small(From, To, "after-restore-" + how);
        var sent = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, Mx, From, [To], message);
        var suspended = await NftTable.SuspendedUidsAsync(s.Ns);
        var warnings = s.RequireDaemon.LogLines().Where(l => l.Category == "netfilter").Select(l => l.Message).ToList();
        var context = $"\nbefore:\n{before}\n{sent.Describe()}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(restored, Is.Not.Null, $"the table was not restored within {interval + 8} s" + context);
            Assert.That(seconds, Is.LessThan(interval + 3), "restored within Interception.VerifyIntervalSeconds (+3 s)" + context);
            Assert.That(warnings, Has.Some.Contains("changed behind our back"), "the change is logged" + context);
            Assert.That(warnings, Has.Some.Contains($"table inet {Table} restored"), "and the restoration" + context);
            Assert.That(suspended, Does.Contain(TestUsers.Bob.Uid), "a restore keeps the suspensions" + context);
            Assert.That(sent.Succeeded, Is.True, context);
        });
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), TestUsers.Alice, message, "redirected again, attributed" + context);
    }

    /// <summary>
    /// The rule lines of a listing, counters masked (they move; named ones too) and the connection-rate meter's entries
    /// left out (a uid's bucket, with the time it expires), for comparing two listings.
    /// </summary>
    private static IReadOnlyList<string> RuleLines(string listing) =>
        [.. listing.Split('\n')
            .Select(l => Counters().Replace(l.Trim(), "counter"))
            .Where(l => l.Length > 0 && !l.Contains(" expires ", StringComparison.Ordinal))];

    [System.Text.RegularExpressions.GeneratedRegex(@"(counter )?packets \d+ bytes \d+")]
    private static partial System.Text.RegularExpressions.Regex Counters();
}
