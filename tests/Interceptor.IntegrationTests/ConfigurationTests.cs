namespace Interceptor.IntegrationTests;

/// <summary>
/// The configuration keys that shape interception, checked end to end through the real nft
/// table: exempt users, extra ports, another listener port, and refusing local destinations
/// that are not explicitly permitted (no bypass via the host's own addresses).
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class ConfigurationTests
{
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Exempt_user_from_config_is_not_intercepted_while_others_still_are()
    {
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { ExemptUsers = ["root", TestUsers.Bob.Name] });
        var fromBob = TestMessage.Small("bob@client.test", To, "bob-exempt");
        var fromAlice = TestMessage.Small("alice@client.test", To, "alice-not-exempt");

        var bob = await Clients.SmtplibAsync(s.Ns, TestUsers.Bob, s.Dir, "127.0.0.2:25", "bob@client.test", [To], fromBob);
        var alice = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:25", "alice@client.test", [To], fromAlice);

        Assert.That(bob.Succeeded && alice.Succeeded, Is.True, bob.Describe() + "\n" + alice.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(2), s.Describe());
        TestMessage.AssertSameBytes(fromBob, messages.Single(m => m.MailFrom == "bob@client.test").Bytes, " (bob is exempt: untouched, no trace header)");
        TraceHeader.AssertPrepended(messages.Single(m => m.MailFrom == "alice@client.test"), TestUsers.Alice, fromAlice, s.Describe());
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions.Select(t => t.User), Is.EqualTo(new[] { TestUsers.Alice.Name }), s.Describe());
    }

    [Test]
    public async Task Additional_intercepted_port_is_relayed_to_its_original_destination()
    {
        IReadOnlyList<string> listen = ["127.0.0.2:25", "127.0.0.2:587"];
        await using var s = await Scenario.StartAsync(
            config: new DaemonConfig { Ports = [25, 587], PermittedLocalDestinations = listen },
            mxListen: listen);
        var message = TestMessage.Small("alice@client.test", To, "port-587");

        var result = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:587", "alice@client.test", [To], message);

        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), s.Describe());
        TraceHeader.AssertPrepended(messages[0], TestUsers.Alice, message, s.Describe());
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions.Single().OriginalDestination, Does.Contain("587"), s.Describe());
    }

    [Test]
    public async Task Other_listen_port_is_used_for_the_redirect()
    {
        // Another privileged port (below net.ipv4.ip_unprivileged_port_start): an unprivileged one is refused (ListenerTakeoverTests).
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { ListenPort = 26 });
        var message = TestMessage.Small("alice@client.test", To, "listen-26");

        var result = await Clients.SmtplibAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:25", "alice@client.test", [To], message);
        var listeners = await s.Ns.RunAsync("ss", ["-H", "-l", "-t", "-n"]);

        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        TraceHeader.AssertPrepended(s.RequireMx.Messages().Single(), TestUsers.Alice, message, s.Describe());
        Assert.That(listeners.Stdout, Does.Contain("127.0.0.1:26 ").And.Not.Contain($":{new DaemonConfig().ListenPort} "), listeners.Describe());
    }

    [Test]
    public async Task Local_destination_that_is_not_permitted_is_refused_and_never_contacted()
    {
        // 127.0.0.3 is this host too (all of 127/8 is local), but only 127.0.0.2:25 is permitted.
        await using var s = await Scenario.StartAsync(mxListen: ["127.0.0.2:25", "127.0.0.3:25"]);
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small("alice@client.test", To, "local-bypass"));

        var dialog = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction("127.0.0.3:25", "alice@client.test", [To], body));

        var context = "\n" + dialog.Describe() + s.Describe();
        var failure = dialog.Replies.FirstOrDefault(r => r.Code is null or >= 400);
        Assert.Multiple(() =>
        {
            Assert.That(failure?.Code, Is.Not.Null.And.InRange(400, 599), "refused with a reply, not a silent close" + context);
            Assert.That(dialog.Reply("BODY")?.Code, Is.Not.EqualTo(250), context);
            Assert.That(s.RequireMx.ConnectionCount, Is.Zero, "the daemon must not connect to a local destination that is not permitted" + context);
        });
    }
}
