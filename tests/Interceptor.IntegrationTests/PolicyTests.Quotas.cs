using System.Text.Json;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Quotas per user with real mail from unprivileged users through the real redirect: each limit refuses exactly at
/// its boundary, with the reply form of src/README.md (reason, user, count/limit, enhanced code), at the earliest point
/// that knows; other users and per-user overrides are independent.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class QuotaPolicyTests
{
    [Test]
    public async Task Hourly_message_quota_refuses_the_fourth_message_and_a_user_override_applies_to_that_user_only()
    {
        var config = Config(("Limits.Default.MessagesPerHour", 3), ("Limits.Users.smtpi-bob.MessagesPerHour", 1));
        await using var s = await Scenario.StartAsync(config: config);
        var alice = TestUsers.Alice;
        var bob = TestUsers.Bob;

        for (var i = 1; i <= 3; i++)
        {
            AssertDelivered(await SendAsync(s, alice, $"alice-{i}"), $" (alice's message {i} of 3)" + s.Describe());
        }

        var fourth = await SendAsync(s, alice, "alice-4");
        var bobFirst = await SendAsync(s, bob, "bob-1");
        var bobSecond = await SendAsync(s, bob, "bob-2");

        Assert.Multiple(() =>
        {
            Assert.That(ReplyLine(fourth, "MAIL"), Is.EqualTo("451 4.7.1 hourly message quota for user smtpi-alice exhausted (3/3); try later"), fourth.Describe());
            Assert.That(fourth.StoppedAt, Is.EqualTo("MAIL"), "refused at MAIL, before any RCPT\n" + fourth.Describe());
            Assert.That(bobFirst.Reply("BODY")?.Code, Is.EqualTo(250), "bob still sends while alice is over her quota\n" + bobFirst.Describe());
            Assert.That(ReplyLine(bobSecond, "MAIL"), Is.EqualTo("451 4.7.1 hourly message quota for user smtpi-bob exhausted (1/1); try later"), "bob's own override (1)\n" + bobSecond.Describe());
            Assert.That(RelayedFor(s, alice).Select(m => Marker(m)), Is.EqualTo(new[] { "alice-1", "alice-2", "alice-3" }), s.Describe());
            Assert.That(RelayedFor(s, bob).Select(m => Marker(m)), Is.EqualTo(new[] { "bob-1" }), s.Describe());
            Assert.That(s.RequireMx.Messages(), Has.Count.EqualTo(4), "nothing else reached the MX" + s.Describe());
        });
    }

    [Test]
    public async Task Hourly_recipient_quota_refuses_the_sixth_recipient_and_the_message_goes_to_the_five_accepted()
    {
        await using var s = await Scenario.StartAsync(config: Config(("Limits.Default.RecipientsPerHour", 5)));
        var alice = TestUsers.Alice;

        var first = await SendAsync(s, alice, "rcpt-1", ["r1@example.test", "r2@example.test", "r3@example.test"]);
        var second = await SendAsync(s, alice, "rcpt-2", ["r4@example.test", "r5@example.test", "r6@example.test"]);

        AssertDelivered(first, s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(second.Reply("RCPT r4@example.test")?.Code, Is.EqualTo(250), second.Describe());
            Assert.That(second.Reply("RCPT r5@example.test")?.Code, Is.EqualTo(250), second.Describe());
            Assert.That(ReplyLine(second, "RCPT r6@example.test"), Is.EqualTo("452 4.7.1 hourly recipient quota for user smtpi-alice exhausted (5/5); try later"), second.Describe());
            Assert.That(second.Reply("BODY")?.Code, Is.EqualTo(250), "the message still goes out to the accepted recipients\n" + second.Describe());
        });

        var relayed = RelayedFor(s, alice);
        Assert.That(relayed, Has.Count.EqualTo(2), s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(relayed[0].RcptTo, Is.EqualTo(new[] { "r1@example.test", "r2@example.test", "r3@example.test" }));
            Assert.That(relayed[1].RcptTo, Is.EqualTo(new[] { "r4@example.test", "r5@example.test" }), "the refused recipient never reached the MX");
            Assert.That(s.RequireMx.Events().Count(e => e.GetProperty("kind").GetString() == "command"
                && e.GetProperty("line").GetString()!.Contains("r6@example.test", StringComparison.Ordinal)), Is.Zero, "RCPT r6 was not relayed" + s.Describe());
        });
    }

    /// <summary>
    /// The per-message recipient cap is the user's own (bob keeps the default) and MailPolicy answers it with the
    /// reply form of src/README.md: "452 4.5.3 too many recipients for user smtpi-alice (2/2 per message); …". The policy
    /// also records it, once per message, as a refusal that the metrics and the suspension rules see.
    /// </summary>
    [Test]
    
    public async Task Recipients_per_message_refusal_names_the_user_and_the_count_and_applies_her_own_limit()
    {
        await using var s = await Scenario.StartAsync(config: Config(("Limits.Users.smtpi-alice.RecipientsPerMessage", 2)));
        string[] recipients = ["r1@example.test", "r2@example.test", "r3@example.test"];

        var alice = await SendAsync(s, TestUsers.Alice, "three-alice", recipients);
        var bob = await SendAsync(s, TestUsers.Bob, "three-bob", recipients);

        Assert.Multiple(() =>
        {
            Assert.That(alice.Reply("RCPT r2@example.test")?.Code, Is.EqualTo(250), alice.Describe());
            Assert.That(alice.Reply("BODY")?.Code, Is.EqualTo(250), "the message goes to the first two\n" + alice.Describe());
            Assert.That(RelayedFor(s, TestUsers.Alice).SingleOrDefault()?.RcptTo, Is.EqualTo(recipients[..2]), s.Describe());
            Assert.That(bob.Reply("BODY")?.Code, Is.EqualTo(250), "bob has the default limit\n" + bob.Describe());
            Assert.That(RelayedFor(s, TestUsers.Bob).SingleOrDefault()?.RcptTo, Is.EqualTo(recipients), s.Describe());
            Assert.That(ReplyLine(alice, "RCPT r3@example.test"), Does.StartWith("452 4.5.3 ").And.Contain("user smtpi-alice").And.Contain("(2/2"),
                "the refusal names the user, the count and the limit\n" + alice.Describe());
        });
    }

    [Test]
    public async Task Third_concurrent_connection_gets_421_at_the_greeting_while_her_two_are_open()
    {
        // Reuse off, so that every served session has an upstream connection of its own to count.
        await using var s = await Scenario.StartAsync(config: Config(("Limits.Default.Connections", 2), ("Relay.ReuseConnections", false)));
        var alice = TestUsers.Alice;
        var flags = s.Dir.Subdirectory("flags", worldWritable: true);

        // Alice holds two sessions, tries a third, signals "holding", waits for "release", closes one, tries again.
        var aliceRun = s.Ns.RunAsUserAsync(alice, Requirements.Python, ["-I", "-c", HoldConnectionsScript, "127.0.0.2", "25", flags], TimeSpan.FromSeconds(40));
        var holding = Path.Combine(flags, "holding");
        for (var i = 0; i < 200 && !File.Exists(holding) && !aliceRun.IsCompleted; i++)
        {
            await Task.Delay(50);
        }

        var bobWhileHeld = File.Exists(holding) ? await TcpProbe.ConnectAsync(s.Ns, TestUsers.Bob, "127.0.0.2", 25) : null;
        await File.WriteAllTextAsync(Path.Combine(flags, "release"), "");
        var run = await aliceRun;

        var line = run.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "alice's client printed no result\n" + run.Describe() + s.Describe());
        using var result = JsonDocument.Parse(line!);
        var root = result.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(root.GetProperty("held").EnumerateArray().Select(g => g.GetString()), Has.All.StartWith("220 "), line);
            Assert.That(root.GetProperty("third").GetString(), Is.EqualTo("421 4.7.0 too many concurrent connections for user smtpi-alice (2/2); try later"), line + s.Describe());
            Assert.That(bobWhileHeld?.Greeting, Does.StartWith("220 "), "bob's cap is his own\n" + bobWhileHeld);
            Assert.That(root.GetProperty("fourth").GetString(), Does.StartWith("220 "), "a closed session frees its slot\n" + line);
            // Two held, bob's, and the one after the release: the refused third never made the daemon call upstream.
            Assert.That(s.RequireMx.ConnectionCount, Is.EqualTo(4), s.Describe());
        });
    }

    [Test]
    public async Task Per_user_message_size_refuses_a_declared_size_at_mail_and_an_oversized_body_at_the_final_dot()
    {
        await using var s = await Scenario.StartAsync(config: Config(("Limits.Users.smtpi-alice.MessageSizeBytes", 2048)));
        var alice = TestUsers.Alice;
        var big = TestMessage.Build("alice@client.test", To, "too-big", attachmentBytes: 3000);
        var body = Clients.WriteStuffedBody(s.Dir, big);

        var declared = await Clients.DialogAsync(s.Ns, alice, s.Dir, new SmtpDialog(Mx, 20)
            .Send("EHLO", "EHLO client.test\r\n")
            .Send("MAIL", "MAIL FROM:<alice@client.test> SIZE=4096\r\n")
            .Send("QUIT", "QUIT\r\n"));
        var undeclared = await Clients.DialogAsync(s.Ns, alice, s.Dir, SmtpDialog.Transaction(Mx, "alice@client.test", [To], body, 20));
        var bob = await Clients.DialogAsync(s.Ns, TestUsers.Bob, s.Dir, new SmtpDialog(Mx, 20)
            .Send("EHLO", "EHLO client.test\r\n")
            .Send("MAIL", $"MAIL FROM:<bob@client.test> SIZE={big.Length}\r\n")
            .Send("RCPT", $"RCPT TO:<{To}>\r\n")
            .Send("DATA", "DATA\r\n", expect: "3")
            .SendFile("BODY", body)
            .Send("QUIT", "QUIT\r\n"));

        Assert.Multiple(() =>
        {
            Assert.That(declared.Reply("EHLO")?.Lines, Has.Some.EqualTo("250-SIZE 2048"), "alice is offered her own limit\n" + declared.Describe());
            Assert.That(ReplyLine(declared, "MAIL"), Is.EqualTo("552 5.3.4 message size 4096 exceeds the limit of 2048 bytes for user smtpi-alice"), declared.Describe());
            Assert.That(ReplyLine(undeclared, "BODY"), Does.StartWith("552 5.3.4 ").And.Contain("2048 bytes for user smtpi-alice"), undeclared.Describe());
            Assert.That(bob.Reply("BODY")?.Code, Is.EqualTo(250), "bob has the default limit\n" + bob.Describe());
            Assert.That(RelayedFor(s, alice), Is.Empty, "none of alice's oversized mail reached the MX" + s.Describe());
            Assert.That(RelayedFor(s, TestUsers.Bob), Has.Count.EqualTo(1), s.Describe());
        });
    }

    private const string HoldConnectionsScript = """
        import json, os, socket, sys, time
        host, port, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        def connect():
            c = socket.create_connection((host, port), 10)
            c.settimeout(10)
            return c
        def reply(c):
            data = b""
            while b"\r\n" not in data:
                chunk = c.recv(1024)
                if not chunk:
                    break
                data += chunk
            return data.decode("latin-1").split("\r\n")[0]
        out = {}
        held = [connect(), connect()]
        out["held"] = [reply(c) for c in held]
        third = connect()
        out["third"] = reply(third)
        third.close()
        open(os.path.join(flags, "holding"), "w").close()
        deadline = time.time() + 15
        while not os.path.exists(os.path.join(flags, "release")) and time.time() < deadline:
            time.sleep(0.05)
        held[0].sendall(b"QUIT\r\n")
        out["quit"] = reply(held[0])
        held[0].close()
        # The daemon frees the slot once that session has ended; give it a moment, then retry briefly.
        deadline = time.time() + 3
        while True:
            time.sleep(0.2)
            fourth = connect()
            out["fourth"] = reply(fourth)
            if out["fourth"].startswith("220") or time.time() > deadline:
                break
            fourth.close()
        fourth.sendall(b"QUIT\r\n")
        reply(fourth)
        held[1].sendall(b"QUIT\r\n")
        reply(held[1])
        print(json.dumps(out))
        """;

    private static string Marker(RecordedMessage message)
    {
        var subject = message.Text.Split("\r\n").FirstOrDefault(l => l.StartsWith("Subject: ", StringComparison.Ordinal));
        return subject?["Subject: ".Length..] ?? "";
    }
}
