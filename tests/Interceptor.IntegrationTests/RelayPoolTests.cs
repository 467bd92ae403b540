using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 15's relay path with real parts: the daemon relays through real Postfix relays (STARTTLS with a test CA, Cyrus
/// SASL accounts, relaying on to the fake MX), each user authenticating as itself. The relays' logs show which login
/// each connection used; the fake MX shows what arrived, with the trace header's relay=.
/// </summary>
[TestFixture]
[Order(1)] // one of the longest fixtures: started first, so it does not run alone at the end of the parallel part
[CancelAfter(300_000)]
public sealed partial class RelayPoolTests
{
    private const string Relay1Address = "127.0.0.3";
    private const string Relay2Address = "127.0.0.4";

    // What a Microsoft front door says to a banned sending address (issue 15's example).
    private const string BannedIp = "550 5.7.606 Access denied, banned sending IP [192.0.2.10]";
    private const string MxHop = "[" + NetworkNamespace.MxAddress4 + "]:25";
    private const string Server = NetworkNamespace.MxAddress4 + ":25";

    private static readonly Dictionary<string, string> Logins = new() { ["alice"] = "alice-relay-pw", ["bob"] = "bob-relay-pw" };

    [Test]
    public async Task Each_users_mail_goes_through_the_primary_with_its_own_login_and_never_over_another_users_connection()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay1 = await PostfixRelay.StartAsync(s.Ns, "relay1", Relay1Address, MxHop, Logins);
        await using var relay2 = await PostfixRelay.StartAsync(s.Ns, "relay2", Relay2Address, MxHop, Logins);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, "Smarthost", [Relay(relay1, "Primary"), Relay(relay2, "Standby")], reuse: true));

        // alice, bob, alice: with reuse on, alice's second message may take her idle session, never bob's.
        foreach (var (user, label) in new[] { (TestUsers.Alice, "a1"), (TestUsers.Bob, "b1"), (TestUsers.Alice, "a2") })
        {
            var result = await SendAsync(s, user, label);
            Assert.That(result.Succeeded, Is.True, result.Describe() + relay1.Describe() + daemon.Transcript());
        }

        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 3), Is.True, "all three arrived\n" + relay1.Describe() + s.Describe());
        var log = relay1.MailLog();
        var connections = SaslUsersPerConnection(log);
        Assert.That(connections.SelectMany(c => c), Is.EquivalentTo(new[] { "alice@relay1.relay.test", "bob@relay1.relay.test", "alice@relay1.relay.test" }), log);
        Assert.That(connections, Has.All.Matches<List<string>>(c => c.Distinct().Count() <= 1), "one login per relay connection\n" + log);
        Assert.That(relay2.MailLog(), Does.Not.Contain("sasl_username="), "the standby stays unknown while the primary is up");
        foreach (var message in s.RequireMx.Messages())
        {
            Assert.That(TraceLine(message), Does.Contain("; relay=relay1"), message.HeaderSection);
        }

        var transactions = await daemon.WaitForTransactionsAsync(3);
        Assert.That(transactions.Select(t => t.Line.StateString("Relay")), Is.EqualTo(new[] { "relay1", "relay1", "relay1" }), daemon.Transcript());
        Assert.That(daemon.Transcript(), Does.Not.Contain("alice-relay-pw").And.Not.Contain("bob-relay-pw"));
    }

    [Test]
    public async Task With_the_primary_down_the_standby_delivers_and_the_client_sees_one_250()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay2 = await PostfixRelay.StartAsync(s.Ns, "relay2", Relay2Address, MxHop, Logins);

        // relay1 is configured but nothing listens on its address: the connection is refused.
        var down = new JsonObject
        {
            ["Name"] = "relay1", ["Host"] = "127.0.0.9", ["Port"] = PostfixRelay.Port, ["Role"] = "Primary", ["Tls"] = "Required",
            ["TlsName"] = "relay1.relay.test", ["CaFile"] = relay2.CaFile, ["EgressAddress"] = "192.0.2.10",
        };
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, "Smarthost", [down, Relay(relay2, "Standby")]));

        var result = await SendAsync(s, TestUsers.Alice, "failover");

        Assert.That(result.Succeeded, Is.True, result.Describe() + relay2.Describe() + daemon.Transcript());
        Assert.That(Regex.Count(result.Stdout, @"<[-~] +250 .*queued"), Is.EqualTo(1), result.Stdout);
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 1), Is.True, relay2.Describe() + s.Describe());
        Assert.That(relay2.MailLog(), Does.Contain("sasl_username=alice@relay2.relay.test"), relay2.Describe());
        Assert.That(TraceLine(s.RequireMx.Messages().Single()), Does.Contain("; relay=relay2"));
        await Task.Delay(500);
        Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(1), "delivered once");
    }

    [Test]
    public async Task A_primary_answering_banned_sending_IP_to_two_users_burns_and_the_next_message_goes_through_the_standby()
    {
        // Burn.RelayMinUsers (2): alice chooses what a relay quotes back to her (her own MX's answer to its recipient
        // verification, her login's name), so her refusals alone, however many, leave relay1 in rotation.
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay1 = await PostfixRelay.StartAsync(s.Ns, "relay1", Relay1Address, MxHop, Logins,
            $"smtpd_recipient_restrictions = check_recipient_access inline:{{ {{rcpt@example.test = {BannedIp}}} }}");
        await using var relay2 = await PostfixRelay.StartAsync(s.Ns, "relay2", Relay2Address, MxHop, Logins);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, "Smarthost", [Relay(relay1, "Primary"), Relay(relay2, "Standby")]));

        for (var i = 0; i < 3; i++)
        {
            var refused = await SendAsync(s, TestUsers.Alice, "banned-" + i);
            Assert.That(refused.Stdout, Does.Contain("5.7.606"), refused.Describe() + relay1.Describe());
        }

        Assert.That(daemon.Transcript(), Does.Not.Contain("relay relay1 burned"), "alice's refusals alone");
        var bobs = await SendAsync(s, TestUsers.Bob, "banned-bob");
        Assert.That(bobs.Stdout, Does.Contain("5.7.606"), bobs.Describe() + relay1.Describe());
        Assert.That(relay2.MailLog(), Does.Not.Contain("sasl_username="), "no Standby while the primary is in rotation");
        var result = await SendAsync(s, TestUsers.Alice, "after-burn");

        Assert.That(result.Succeeded, Is.True, result.Describe() + relay2.Describe() + daemon.Transcript());
        Assert.That(relay2.MailLog(), Does.Contain("sasl_username=alice@relay2.relay.test"), relay2.Describe());
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 1), Is.True, s.Describe());
        Assert.That(TraceLine(s.RequireMx.Messages().Single()), Does.Contain("; relay=relay2"));
    }

    [Test]
    public async Task A_primary_refusing_addresses_named_like_block_codes_quotes_them_back_and_stays_in_rotation()
    {
        // Postfix's REJECT quotes the address: "554 5.7.1 <S3150@example.test>: Recipient address rejected: Access
        // denied". Her address, not the relay's standing: counted as a burn notice, three of them would burn relay1.
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay1 = await PostfixRelay.StartAsync(s.Ns, "relay1", Relay1Address, MxHop, Logins,
            "smtpd_recipient_restrictions = check_recipient_access inline:{ {S3150@example.test = REJECT} {TSS04@example.test = REJECT} {echo.test = REJECT} }");
        await using var relay2 = await PostfixRelay.StartAsync(s.Ns, "relay2", Relay2Address, MxHop, Logins);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, "Smarthost", [Relay(relay1, "Primary"), Relay(relay2, "Standby")]));

        // The last two quoted, with a bracket and a space in them: Postfix quotes them back in its internal form,
        // <a<S3150 b@echo.test>, with no path left to strip whole. Two users send them, as Burn.RelayMinUsers needs.
        foreach (var (user, to, echoed) in new[]
        {
            (TestUsers.Alice, "S3150@example.test", "<S3150@example.test>"), (TestUsers.Bob, "\"a<S3150 b\"@echo.test", "<a<S3150 b@echo.test>"),
            (TestUsers.Alice, "\"c<TSS04 d\"@echo.test", "<c<TSS04 d@echo.test>"),
        })
        {
            var refused = await SendAsync(s, user, "echo", to: to);
            Assert.That(refused.Stdout, Does.Contain(echoed + ": Recipient address rejected"), refused.Describe() + relay1.Describe());
        }

        var result = await SendAsync(s, TestUsers.Alice, "after-echoes");

        Assert.That(result.Succeeded, Is.True, result.Describe() + relay1.Describe() + daemon.Transcript());
        Assert.That(relay2.MailLog(), Does.Not.Contain("sasl_username="), "relay1 was not burned, so no standby\n" + daemon.Transcript());
        Assert.That(daemon.Transcript(), Does.Not.Contain("relay relay1 burned"));
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 1), Is.True, s.Describe());
        Assert.That(TraceLine(s.RequireMx.Messages().Single()), Does.Contain("; relay=relay1"));
    }

    [Test]
    public async Task In_Auto_mode_the_hosts_direct_mail_switches_to_the_pool_only_after_burn_replies_drawn_by_two_users_mail_from_two_networks()
    {
        var script = new FakeMxScript { RcptReplies = new Dictionary<string, string> { ["burn@example.test"] = BannedIp } };
        await using var s = await Scenario.StartAsync(script, startDaemon: false);
        await using var relay1 = await PostfixRelay.StartAsync(s.Ns, "relay1", Relay1Address, MxHop, Logins);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, Config(s.Dir, "Auto", [Relay(relay1, "Primary")]));

        var direct = await SendAsync(s, TestUsers.Alice, "direct", to: "rcpt@example.test");
        Assert.That(direct.Succeeded, Is.True, direct.Describe() + daemon.Transcript());
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 1), Is.True);
        Assert.That(TraceLine(s.RequireMx.Messages()[0]), Does.Not.Contain("relay="), "direct while the host is healthy");
        // Burn.HostMinUsers (2): alice alone (her site could be talking to an MX it runs) never burns the host.
        for (var i = 0; i < 3; i++)
        {
            var refused = await SendAsync(s, TestUsers.Alice, "burn-" + i, to: "burn@example.test");
            Assert.That(refused.Stdout, Does.Contain("5.7.606"), refused.Describe());
        }

        var stillDirect = await SendAsync(s, TestUsers.Alice, "still-direct", to: "rcpt@example.test");
        Assert.That(stillDirect.Succeeded, Is.True, stillDirect.Describe() + daemon.Transcript());
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 2), Is.True);
        Assert.That(TraceLine(s.RequireMx.Messages()[1]), Does.Not.Contain("relay="), "one user's burn replies alone leave the host direct");
        // Burn.HostMinNetworks (2): bob's mail sent to alice's own MX (her contact form, her domain) is a second user
        // but the same network: still direct.
        var viaHerMx = await SendAsync(s, TestUsers.Bob, "burn-bob-v4", to: "burn@example.test");
        Assert.That(viaHerMx.Stdout, Does.Contain("5.7.606"), viaHerMx.Describe());
        var stillDirectForBob = await SendAsync(s, TestUsers.Bob, "still-direct-bob", to: "rcpt@example.test");
        Assert.That(stillDirectForBob.Succeeded, Is.True, stillDirectForBob.Describe() + daemon.Transcript());
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 3), Is.True);
        Assert.That(TraceLine(s.RequireMx.Messages()[2]), Does.Not.Contain("relay="), "two users, one network: the host stays direct");

        // Another network (the MX's IPv6 address, another /48) refusing bob's mail: two users and two networks, but
        // the second network refused one user's mail only. Counted apart, that burned the host: her one MX, with its two
        // addresses, and one of bob's mails sent there were enough. Still direct.
        var viaHerV6 = await Clients.SmtplibAsync(s.Ns, TestUsers.Bob, s.Dir, $"[{NetworkNamespace.MxAddress6}]:25", "bob@site.test", ["burn@example.test"],
            TestMessage.Build("bob@site.test", "burn@example.test", "burn-bob-v6"));
        Assert.That(viaHerV6.Stdout + viaHerV6.Stderr, Does.Contain("5.7.606"), viaHerV6.Describe());
        var directAfterV6 = await SendAsync(s, TestUsers.Bob, "still-direct-v6", to: "rcpt@example.test");
        Assert.That(directAfterV6.Succeeded, Is.True, directAfterV6.Describe() + daemon.Transcript());
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 4), Is.True);
        Assert.That(TraceLine(s.RequireMx.Messages()[3]), Does.Not.Contain("relay="), "the second network refused only bob's mail: the host stays direct");

        // The same network refusing a second user's mail completes the evidence: two networks, each two users'.
        var confirmed = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, $"[{NetworkNamespace.MxAddress6}]:25", "alice@site.test", ["burn@example.test"],
            TestMessage.Build("alice@site.test", "burn@example.test", "burn-alice-v6"));
        Assert.That(confirmed.Stdout + confirmed.Stderr, Does.Contain("5.7.606"), confirmed.Describe());

        Assert.That(relay1.MailLog(), Does.Not.Contain("sasl_username="));
        var pooled = await SendAsync(s, TestUsers.Bob, "pooled", to: "rcpt@example.test");

        Assert.That(pooled.Succeeded, Is.True, pooled.Describe() + relay1.Describe() + daemon.Transcript());
        Assert.That(relay1.MailLog(), Does.Contain("sasl_username=bob@relay1.relay.test"), relay1.Describe());
        Assert.That(await WaitAsync(() => s.RequireMx.Messages().Count == 5), Is.True, relay1.Describe() + s.Describe());
        Assert.That(TraceLine(s.RequireMx.Messages()[4]), Does.Contain("; relay=relay1"));
    }

    [Test]
    public async Task A_refused_login_gets_a_4xx_naming_the_user_and_the_relay_still_carries_other_users_mail()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay1 = await PostfixRelay.StartAsync(s.Ns, "relay1", Relay1Address, MxHop, Logins);
        await using var relay2 = await PostfixRelay.StartAsync(s.Ns, "relay2", Relay2Address, MxHop, Logins);
        var credentials = $"{TestUsers.Alice.Name} alice wrong-password\n{TestUsers.Bob.Name} bob bob-relay-pw\n";
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir,
            Config(s.Dir, "Smarthost", [Relay(relay1, "Primary"), Relay(relay2, "Standby")], credentials: credentials));

        var refused = await SendAsync(s, TestUsers.Alice, "bad-login");
        var carried = await SendAsync(s, TestUsers.Bob, "good-login");

        Assert.That(refused.Stdout, Does.Contain($"421 4.7.0 relay relay1 refused the login of user {TestUsers.Alice.Name}"), refused.Describe() + daemon.Transcript());
        Assert.That(carried.Succeeded, Is.True, carried.Describe() + relay1.Describe() + daemon.Transcript());
        Assert.That(relay1.MailLog(), Does.Contain("sasl_username=bob@relay1.relay.test"), "relay1 was not marked down\n" + relay1.Describe());
        Assert.That(relay2.MailLog(), Does.Not.Contain("sasl_username="), "a 535 is no reason to use the standby");
        Assert.That(daemon.Transcript(), Does.Not.Contain("wrong-password").And.Not.Contain("bob-relay-pw"));
    }

    private static Task<ProcessResult> SendAsync(Scenario s, TestUser user, string label, string to = "rcpt@example.test") =>
        Clients.SwaksAsync(s.Ns, user, s.Dir, Server, $"{user.Name}@site.test", to, TestMessage.Build($"{user.Name}@site.test", to, label));

    /// <summary>Our trace header (a relay puts its Received line above it).</summary>
    private static string TraceLine(RecordedMessage message) =>
        message.HeaderSection.Split("\r\n").FirstOrDefault(l => l.StartsWith(TraceHeader.Name + ":", StringComparison.Ordinal)) ?? "(no trace header)";

    private static JsonObject Relay(PostfixRelay relay, string role) => new()
    {
        ["Name"] = relay.Name,
        ["Host"] = relay.Address,
        ["Port"] = PostfixRelay.Port,
        ["Role"] = role,
        ["Tls"] = "Required",
        ["TlsName"] = relay.HostName,
        ["CaFile"] = relay.CaFile,
        ["EgressAddress"] = relay.Name == "relay1" ? "192.0.2.10" : "192.0.2.20",
    };

    private static DaemonConfig Config(TestDirectory dir, string mode, IReadOnlyList<JsonObject> relays, bool reuse = false, string? credentials = null)
    {
        var path = dir.Write("relay-credentials", credentials ?? $"{TestUsers.Alice.Name} alice alice-relay-pw\n{TestUsers.Bob.Name} bob bob-relay-pw\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return new DaemonConfig
        {
            // The relays' own smtp client (user postfix) sends to the fake MX on port 25: it must not be intercepted.
            ExemptUsers = ["root", "postfix"],
            Settings = new Dictionary<string, JsonNode?>
            {
                ["Relay.Mode"] = mode,
                ["Relay.Smarthosts"] = new JsonArray([.. relays]),
                ["Relay.CredentialsFile"] = path,
                ["Relay.ReuseConnections"] = reuse,
                ["Burn.Threshold"] = 2,
                ["Burn.DnsblZones"] = new JsonArray(),
            },
        };
    }

    /// <summary>The sasl_username of each message, grouped by the smtpd connection (pid between connect and disconnect) that took it.</summary>
    private static List<List<string>> SaslUsersPerConnection(string mailLog)
    {
        var open = new Dictionary<string, List<string>>();
        var all = new List<List<string>>();
        foreach (Match line in SmtpdLine().Matches(mailLog))
        {
            var (pid, text) = (line.Groups[1].Value, line.Groups[2].Value);
            if (text.StartsWith("connect from", StringComparison.Ordinal))
            {
                open[pid] = [];
                all.Add(open[pid]);
            }
            else if (text.StartsWith("disconnect from", StringComparison.Ordinal))
            {
                open.Remove(pid);
            }
            else if (SaslUser().Match(text) is { Success: true } user && open.TryGetValue(pid, out var connection))
            {
                connection.Add(user.Groups[1].Value);
            }
        }

        return all;
    }

    // Generous: the relays pass the test message (with its attachment) on through Postfix queues, on a shared, busy machine.
    private static Task<bool> WaitAsync(Func<bool> condition) => Poll.UntilAsync(condition, TimeSpan.FromSeconds(90));

    [GeneratedRegex(@"postfix/smtpd\[(\d+)\]: (.*)$", RegexOptions.Multiline)]
    private static partial Regex SmtpdLine();

    [GeneratedRegex(@"sasl_username=(\S+)")]
    private static partial Regex SaslUser();
}
