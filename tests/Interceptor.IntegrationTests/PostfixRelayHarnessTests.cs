namespace Interceptor.IntegrationTests;

/// <summary>
/// The Postfix relay fixture (issue 15) checked on its own, without the daemon: a client that authenticates over
/// STARTTLS, verifying the relay's certificate against the test CA, gets its mail relayed to the fake MX, and the
/// relay's log names the login. The relay-pool tests build on this.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class PostfixRelayHarnessTests
{
    [Test]
    public async Task A_postfix_relay_takes_AUTH_over_STARTTLS_and_relays_to_the_fake_mx()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay = await PostfixRelay.StartAsync(s.Ns, "relay1", "127.0.0.3", "[127.0.0.2]:25", new Dictionary<string, string> { ["alice"] = "alice-relay-pw" });
        var message = TestMessage.Build("alice@site.test", "rcpt@example.test", "relay-fixture");

        var result = await Clients.SwaksAsync(s.Ns, null, s.Dir, relay.EndPoint, "alice@site.test", "rcpt@example.test", message,
            extraArguments: ["--tls", "--tls-verify", "--tls-ca-path", relay.CaFile, "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice-relay-pw"]);

        Assert.That(result.Succeeded, Is.True, result.Describe() + relay.Describe());
        var delivered = await Poll.UntilAsync(() => s.RequireMx.Messages().Count == 1, TimeSpan.FromSeconds(30));
        Assert.That(delivered, Is.True, "the relay passed the message on to the fake MX\n" + relay.Describe() + s.Describe());
        Assert.That(s.RequireMx.Messages()[0].RcptTo, Is.EqualTo(new[] { "rcpt@example.test" }));
        Assert.That(relay.MailLog(), Does.Contain("sasl_method=PLAIN, sasl_username=alice@relay1.relay.test"), relay.Describe());
    }

    [Test]
    public async Task The_relay_refuses_AUTH_with_a_wrong_password_and_mail_without_AUTH()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        await using var relay = await PostfixRelay.StartAsync(s.Ns, "relay1", "127.0.0.3", "[127.0.0.2]:25", new Dictionary<string, string> { ["alice"] = "alice-relay-pw" });
        var message = TestMessage.Build("alice@site.test", "rcpt@example.test", "relay-fixture-refused");
        string[] tls = ["--tls", "--tls-verify", "--tls-ca-path", relay.CaFile];

        var wrong = await Clients.SwaksAsync(s.Ns, null, s.Dir, relay.EndPoint, "alice@site.test", "rcpt@example.test", message,
            extraArguments: [.. tls, "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong"]);
        var anonymous = await Clients.SwaksAsync(s.Ns, null, s.Dir, relay.EndPoint, "alice@site.test", "rcpt@example.test", message, extraArguments: tls);

        Assert.That(wrong.Stdout, Does.Match(@"<~\* +535 5\.7\.8 "), wrong.Describe() + relay.Describe());
        Assert.That(anonymous.Stdout, Does.Match(@"<~\* +554 5\.7\.1 .*Access denied"), anonymous.Describe() + relay.Describe());
        Assert.That(s.RequireMx.Messages(), Is.Empty);
    }

}
