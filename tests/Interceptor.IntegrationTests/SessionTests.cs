namespace Interceptor.IntegrationTests;

/// <summary>
/// Session shapes that legacy customer code really produces: pipelined commands, several
/// transactions on one connection (keep-alive mailers), HELO instead of EHLO, and clients that
/// connect and then go silent.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class SessionTests
{
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private static TestUser Alice => TestUsers.Alice;

    [Test]
    public async Task Pipelining_client_is_relayed()
    {
        await using var s = await Scenario.StartAsync();
        var message = TestMessage.Small(From, To, "pipelined");

        var result = await Clients.SwaksAsync(s.Ns, Alice, s.Dir, "127.0.0.2:25", From, To, message, extraArguments: ["--pipeline"]);

        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), s.Describe());
        TraceHeader.AssertPrepended(messages[0], Alice, message, s.Describe());
    }

    [Test]
    public async Task Two_transactions_on_one_connection_are_both_relayed_with_their_own_event()
    {
        await using var s = await Scenario.StartAsync();
        var first = TestMessage.Small(From, To, "first-of-two");
        var second = TestMessage.Small(From, "other@example.test", "second-of-two");
        var dialog = new SmtpDialog("127.0.0.2:25")
            .Send("EHLO", "EHLO client.test\r\n")
            .Send("MAIL1", $"MAIL FROM:<{From}>\r\n")
            .Send("RCPT1", $"RCPT TO:<{To}>\r\n")
            .Send("DATA1", "DATA\r\n", expect: "3")
            .SendFile("BODY1", Clients.WriteStuffedBody(s.Dir, first))
            .Send("RSET", "RSET\r\n")
            .Send("MAIL2", $"MAIL FROM:<{From}>\r\n")
            .Send("RCPT2", "RCPT TO:<other@example.test>\r\n")
            .Send("DATA2", "DATA\r\n", expect: "3")
            .SendFile("BODY2", Clients.WriteStuffedBody(s.Dir, second))
            .Send("QUIT", "QUIT\r\n");

        var result = await Clients.DialogAsync(s.Ns, Alice, s.Dir, dialog);

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.StoppedAt, Is.Null, context);
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(2), context);
        var firstHeader = TraceHeader.AssertPrepended(messages[0], Alice, first, context);
        var secondHeader = TraceHeader.AssertPrepended(messages[1], Alice, second, context);
        Assert.That(messages[1].RcptTo, Is.EqualTo(new[] { "other@example.test" }), "the second envelope is not mixed with the first" + context);
        Assert.That(secondHeader.Id, Is.Not.EqualTo(firstHeader.Id), "one event id per transaction" + context);
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(2);
        Assert.That(transactions.Select(t => t.Id), Is.EquivalentTo(new[] { firstHeader.Id, secondHeader.Id }), context);
    }

    [Test]
    public async Task Helo_client_is_relayed()
    {
        await using var s = await Scenario.StartAsync();
        var message = TestMessage.Small(From, To, "helo-only");
        var dialog = new SmtpDialog("127.0.0.2:25")
            .Send("HELO", "HELO client.test\r\n")
            .Send("MAIL", $"MAIL FROM:<{From}>\r\n")
            .Send("RCPT", $"RCPT TO:<{To}>\r\n")
            .Send("DATA", "DATA\r\n", expect: "3")
            .SendFile("BODY", Clients.WriteStuffedBody(s.Dir, message))
            .Send("QUIT", "QUIT\r\n");

        var result = await Clients.DialogAsync(s.Ns, Alice, s.Dir, dialog);

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.StoppedAt, Is.Null, context);
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), context);
        TraceHeader.AssertPrepended(messages[0], Alice, message, context);
    }

    [Test]
    public async Task Silent_client_is_disconnected_after_the_idle_timeout()
    {
        const int idle = 2;
        await using var s = await Scenario.StartAsync(config: new DaemonConfig { IdleTimeoutSeconds = idle });
        // Greeting, EHLO, then nothing: read until the daemon closes (or the 20 s dialog timeout says it never did).
        var dialog = new SmtpDialog("127.0.0.2:25", timeoutSeconds: 20)
            .Send("EHLO", "EHLO client.test\r\n")
            .SendAndReadAll("IDLE", "");

        var result = await Clients.DialogAsync(s.Ns, Alice, s.Dir, dialog);

        var context = "\n" + result.Describe() + s.Describe();
        var end = result.Replies.LastOrDefault(r => r.Label == "IDLE");
        Assert.That(end, Is.Not.Null, context);
        Assert.Multiple(() =>
        {
            Assert.That(end!.TimedOut, Is.False, "the daemon never closed the idle session" + context);
            Assert.That(end.AtSeconds - (result.Reply("EHLO")?.AtSeconds ?? 0), Is.InRange(idle - 0.5, idle + 4.0), $"closed about Smtp.IdleTimeoutSeconds={idle}s after the last command" + context);
            Assert.That(result.Replies.Where(r => r.Label == "IDLE" && r.Code is not null).Select(r => r.Code), Is.All.InRange(400, 499), "a goodbye, if any, is a 4xx (421)" + context);
        });
    }
}
