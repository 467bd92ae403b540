using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 4, hostile clients: slow ones, noisy ones, greedy ones and would-be open-relay users, each from a real
/// unprivileged user through the redirect, while another user's mail must keep flowing. Timeouts are configured
/// short (seconds) so the whole fixture stays fast; the figures each test measures are printed.
/// </summary>
[TestFixture]
[NonParallelizable] // bounds on reply gaps and on a neighbour's latency
[CancelAfter(120_000)]
public sealed class HostileClientTests
{
    private const string Mx = "127.0.0.2:25";
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";

    [Test]
    public async Task A_command_trickled_one_byte_a_second_is_cut_off_by_the_line_timeout_while_another_user_is_served_promptly()
    {
        const int lineTimeout = 3;
        const int idle = 10;
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(
            ("Smtp.CommandLineTimeoutSeconds", lineTimeout), ("Smtp.IdleTimeoutSeconds", idle)));
        const string command = "MAIL FROM:<alice@client.test>\r\n";
        var trickle = new HostileDialog(Mx, timeoutSeconds: 30)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .Trickle("TRICKLE", command, intervalSeconds: 1.0)
            .ReadAll("AFTER")
            .RunAsync(s.Ns, TestUsers.Alice, s.Dir);

        // Bob sends while alice's trickle holds her session.
        await Task.Delay(1500);
        var bobMessage = TestMessage.Small("bob@client.test", To, "during-trickle");
        var clock = Stopwatch.StartNew();
        var bob = await Clients.SmtplibAsync(s.Ns, TestUsers.Bob, s.Dir, Mx, "bob@client.test", [To], bobMessage);
        var bobSeconds = clock.Elapsed.TotalSeconds;
        var alice = await trickle;

        var started = alice.Reply("TRICKLE start")?.AtSeconds ?? double.NaN;
        var cut = alice.Reply("TRICKLE");
        var cutAfter = (cut?.AtSeconds ?? double.NaN) - started;
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"trickle cut off {cutAfter:F2} s after its first byte (Smtp.CommandLineTimeoutSeconds={lineTimeout}, idle {idle}); bob's message took {bobSeconds:F2} s meanwhile"));
        var context = "\n" + alice.Describe() + "\n" + bob.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(cut?.Raw, Does.StartWith("421 4.4.2 "), context);
            Assert.That(cutAfter, Is.InRange(lineTimeout - 0.5, lineTimeout + 2.5), "cut by the line timeout, long before the idle timeout" + context);
            Assert.That(HostileDialog.EndsClosed(alice), Is.True, "and disconnected" + context);
            Assert.That(bob.Succeeded, Is.True, context);
            Assert.That(bobSeconds, Is.LessThan(5), "bob is not held up by alice's trickle" + context);
            Assert.That(PolicyTestSupport.RelayedFor(s, TestUsers.Bob), Has.Count.EqualTo(1), context);
            Assert.That(s.RequireMx.Events().Where(e => e.GetProperty("kind").GetString() == "command").Select(e => e.GetProperty("line").GetString()),
                Has.None.StartsWith("MAIL FROM:<alice"), "the trickled command never reached the MX" + context);
        });
    }

    [Test]
    public async Task An_error_storm_is_slowed_after_the_soft_limit_and_cut_off_with_421_at_the_hard_limit()
    {
        const int delayMs = 500;
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(("Smtp.ErrorDelayMilliseconds", delayMs)));
        var dialog = new SmtpDialog(Mx, timeoutSeconds: 30);
        for (var i = 1; i <= 25; i++)
        {
            dialog.Send($"JUNK {i}", $"XJUNK{i} spam\r\n", expect: "2345");
        }

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, dialog);

        var times = new List<double> { result.Reply("GREETING")?.AtSeconds ?? 0 };
        times.AddRange(Enumerable.Range(1, 21).Select(i => result.Reply($"JUNK {i}")?.AtSeconds ?? double.NaN));
        var gaps = Enumerable.Range(1, 21).Select(i => times[i] - times[i - 1]).ToList();
        await TestContext.Out.WriteLineAsync("seconds per reply: " + string.Join(" ", gaps.Select((g, i) => string.Create(CultureInfo.InvariantCulture, $"{i + 1}:{g:F2}"))));
        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(Enumerable.Range(1, 20).Select(i => result.Reply($"JUNK {i}")?.Code), Has.All.EqualTo(500), context);
            Assert.That(result.Reply("JUNK 21")?.Raw, Does.StartWith("421 4.7.0 Error: too many errors"), "the 21st command, after 20 errors, ends the session" + context);
            Assert.That(Enumerable.Range(22, 4).Select(i => result.Reply($"JUNK {i}")?.Code), Has.All.Null, "nothing is answered after the 421" + context);
            Assert.That(Median(gaps.Take(10)), Is.LessThan(0.25), "the first 10 errors are answered at once" + context);
            Assert.That(gaps.Skip(10).Take(10), Has.All.GreaterThanOrEqualTo((delayMs - 20) / 1000.0), "errors 11-20 are each delayed by Smtp.ErrorDelayMilliseconds" + context);
        });
    }

    [Test]
    public async Task A_connection_flood_from_one_user_gets_421_above_the_cap_while_another_users_mail_flows()
    {
        const int cap = 20;
        // Automatic suspension off: the point is the daemon under the flood, not the kernel refusing bob after 50 refusals.
        await using var s = await Scenario.StartAsync(config: PolicyTestSupport.Config(
            ("Limits.Default.Connections", cap), ("Suspension.RefusalLimit", 0)));
        var flags = s.Dir.Subdirectory("flags", worldWritable: true);
        var capped = Path.Combine(flags, "capped");
        var baseline = await SendTimedAsync(s, count: 3);

        var flood = s.Ns.RunAsUserAsync(TestUsers.Bob, Requirements.Python,
            ["-I", s.Dir.PathOf("flood.py"), "flood", "127.0.0.2", "25", "--threads", "200", "--seconds", "6", "--hold", "1", "--mark", capped],
            TimeSpan.FromSeconds(60));
        for (var i = 0; i < 200 && !File.Exists(capped) && !flood.IsCompleted; i++)
        {
            await Task.Delay(50);
        }

        var during = await SendTimedAsync(s, count: 8);
        var floodRun = await flood;

        var floodLine = floodRun.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(floodLine, Is.Not.Null, "the flood printed no result\n" + floodRun.Describe() + s.Describe());
        var result = JsonNode.Parse(floodLine!)!;
        var greetings = result["greetings"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<int>());
        var refusals = result["refusals"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        var floodEnd = result["end"]!.GetValue<double>();
        var latencies = during.Select(d => d.Seconds).Order().ToList();
        var stateBytes = Directory.GetFiles(PolicyTestSupport.StateDirectory(s.RequireDaemon)).Sum(f => new FileInfo(f).Length);
        await TestContext.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"flood by bob: {result["connections"]} connections in 6 s, greetings {JsonSerializer.Serialize(greetings)}, errors {result["errors"]!.ToJsonString()}, at most {result["max_open"]} sessions open at once (cap {cap})\n" +
            $"alice's messages: baseline {string.Join(" ", baseline.Select(b => b.Seconds.ToString("F3", CultureInfo.InvariantCulture)))} s; " +
            $"during the flood {string.Join(" ", during.Select(d => d.Seconds.ToString("F3", CultureInfo.InvariantCulture)))} s (median {latencies[latencies.Count / 2]:F3}, max {latencies[^1]:F3})\n" +
            $"state store after the flood: {stateBytes / 1024.0:F0} KiB (refusals are tallied per user and minute, not stored one row each)"));
        var context = "\n" + floodLine + "\n" + string.Join("\n", during) + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(greetings.GetValueOrDefault("421"), Is.GreaterThan(0), "connections above the cap are refused" + context);
            Assert.That(refusals, Has.All.StartWith($"421 4.7.0 too many concurrent connections for user {TestUsers.Bob.Name}"), context);
            Assert.That(greetings.GetValueOrDefault("220"), Is.GreaterThanOrEqualTo(cap), "up to the cap bob is served" + context);
            // Counted on the client side from the greeting to just before QUIT: inside the time the daemon holds the
            // session's place under the cap, so the count can never exceed the cap unless the daemon let too many in.
            Assert.That(result["max_open"]!.GetValue<int>(), Is.LessThanOrEqualTo(cap), "never more than the cap at once" + context);
            Assert.That(during.Select(d => d.Ok), Has.All.True, "alice's mail flows during the flood" + context);
            Assert.That(during.Select(d => d.Start), Has.All.LessThan(floodEnd), "and was sent while the flood was on" + context);
            Assert.That(latencies[^1], Is.LessThan(10), "each of alice's messages within 10 s" + context);
            Assert.That(PolicyTestSupport.RelayedFor(s, TestUsers.Alice), Has.Count.EqualTo(baseline.Count + during.Count), context);
            Assert.That(s.RequireDaemon.Process.HasExited, Is.False, context);
        });
    }

    [Test]
    public async Task Redirected_connections_to_loopback_or_this_hosts_own_address_are_refused_with_421_and_never_relayed()
    {
        // The MX listens everywhere a relay might wrongly go; only 127.0.0.2:25 is a permitted local destination.
        await using var s = await Scenario.StartAsync(
            config: new DaemonConfig { PermittedLocalDestinations = [Mx] },
            mxListen: [Mx, "127.0.0.1:25", "127.0.0.3:25", $"[{NetworkNamespace.MxAddress6}]:25"]);

        var loopback = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, "127.0.0.1", 25);
        var otherLoopback = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, "127.0.0.3", 25);
        var ownAddress = await TcpProbe.ConnectAsync(s.Ns, TestUsers.Alice, NetworkNamespace.MxAddress6, 25);
        var connectsBeforeControl = s.RequireMx.ConnectionCount;
        var control = await PolicyTestSupport.SendAsync(s, TestUsers.Alice, "permitted-control");

        var context = $"\n{loopback}\n{otherLoopback}\n{ownAddress}{s.Describe()}";
        Assert.Multiple(() =>
        {
            foreach (var probe in new[] { loopback, otherLoopback, ownAddress })
            {
                Assert.That(probe.Greeting, Does.StartWith("421 4.7.1 ").And.Contain("not permitted"), context);
            }

            Assert.That(connectsBeforeControl, Is.Zero, "the daemon never connected to a refused destination" + context);
            PolicyTestSupport.AssertDelivered(control, context);
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(1), context);
        });
    }

    /// <summary>
    /// RFC 2920: EHLO ends a pipelined group, so MAIL sent with it before the EHLO reply is a synchronization error;
    /// Postfix (smtpd_forbid_unauth_pipelining, default yes since 3.9) answers 554 5.5.0 and disconnects.
    /// </summary>
    [Test]
    public async Task Commands_pipelined_behind_EHLO_are_refused_and_disconnected_as_Postfix_does()
    {
        await using var s = await Scenario.StartAsync();
        var dialog = new HostileDialog(Mx, timeoutSeconds: 3)
            .Send("EHLO+MAIL", $"EHLO client.test\r\nMAIL FROM:<{From}>\r\nRCPT TO:<{To}>\r\n")
            .ReadAll("REPLIES");

        var result = await dialog.RunAsync(s.Ns, TestUsers.Alice, s.Dir);

        var context = "\n" + result.Describe() + s.Describe();
        Assert.Multiple(() =>
        {
            Assert.That(result.Replies.Where(r => r.Label == "REPLIES").Select(r => r.Code), Does.Contain(554), context);
            Assert.That(s.RequireMx.Events().Where(e => e.GetProperty("kind").GetString() == "command").Select(e => e.GetProperty("line").GetString()),
                Has.None.StartsWith("MAIL"), context);
        });
    }

    /// <summary>One timed send as alice: when it started (unix seconds), how long it took, whether it was accepted.</summary>
    private sealed record TimedSend(double Start, double Seconds, bool Ok, string? Error);

    private static async Task<IReadOnlyList<TimedSend>> SendTimedAsync(Scenario s, int count)
    {
        var run = await s.Ns.RunAsUserAsync(TestUsers.Alice, Requirements.Python,
            ["-I", s.Dir.PathOf("flood.py"), "send", "127.0.0.2", "25", "--count", count.ToString(CultureInfo.InvariantCulture), "--interval", "0.25"],
            TimeSpan.FromSeconds(90));
        var line = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "the timed sender printed no result\n" + run.Describe());
        return [.. JsonNode.Parse(line!)!["sends"]!.AsArray().Select(n => new TimedSend(
            n!["start"]!.GetValue<double>(), n["seconds"]!.GetValue<double>(), n["ok"]!.GetValue<bool>(), n["error"]?.GetValue<string>()))];
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[sorted.Count / 2];
    }
}
