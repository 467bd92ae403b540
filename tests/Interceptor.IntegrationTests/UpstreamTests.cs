namespace Interceptor.IntegrationTests;

/// <summary>
/// Lock-step relay: the upstream's own replies reach the client verbatim, and an upstream that is
/// down, silent or drops the connection turns into a prompt 4xx, never a 250 and never a hang.
/// All clients run as smtpi-alice, so every connection is intercepted.
/// </summary>
[TestFixture]
[Order(1)] // one of the longest fixtures: started first, so it does not run alone at the end of the parallel part
[CancelAfter(180_000)]
public sealed class UpstreamTests
{
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private const string Refused = "nouser@example.test";
    private static TestUser Alice => TestUsers.Alice;

    [TestCase("550 5.1.1 <nouser@example.test>: Recipient address rejected: no such user")]
    [TestCase("450 4.2.0 <nouser@example.test>: Recipient address rejected: greylisted, try again in 5 minutes")]
    [TestCase("550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Please check the recipient's address and try again.")]
    public async Task Rcpt_refused_upstream_reaches_the_client_verbatim(string reply)
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { RcptReplies = new Dictionary<string, string> { [Refused] = reply } });
        var message = TestMessage.Small(From, To, "rcpt-refused");

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To, Refused], Clients.WriteStuffedBody(s.Dir, message)));

        var context = "\n" + dialog.Describe() + s.Describe();
        Assert.That(dialog.Reply("RCPT " + Refused)?.Raw, Is.EqualTo(reply + "\r\n"), "code, enhanced code and text exactly as upstream said" + context);
        Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), "the accepted recipient still gets the message" + context);
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), context);
        Assert.That(messages[0].RcptTo, Is.EqualTo(new[] { To }), context);
        TraceHeader.AssertPrepended(messages[0], Alice, message, context);
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Two_users_in_a_row_share_one_upstream_connection_only_when_reuse_is_on(bool reuse)
    {
        const string bobFrom = "bob@client.test";
        var config = new DaemonConfig { Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["Relay.ReuseConnections"] = reuse } };
        await using var s = await Scenario.StartAsync(config: config);
        var fromAlice = TestMessage.Small(From, To, "reuse-alice");
        var fromBob = TestMessage.Small(bobFrom, To, "reuse-bob");

        var alice = await Clients.SwaksAsync(s.Ns, Alice, s.Dir, "127.0.0.2:25", From, To, fromAlice);
        var bob = await Clients.SmtplibAsync(s.Ns, TestUsers.Bob, s.Dir, "127.0.0.2:25", bobFrom, [To], fromBob);

        var context = "\n" + alice.Describe() + bob.Describe() + s.Describe();
        Assert.That(alice.Succeeded && bob.Succeeded, Is.True, context);
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(2), context);
        var byAlice = messages.Single(m => m.MailFrom == From);
        var byBob = messages.Single(m => m.MailFrom == bobFrom);

        // The fake MX records the relay's address and port per connection.
        Assert.That(byAlice.Client == byBob.Client, Is.EqualTo(reuse), $"alice via {byAlice.Client}, bob via {byBob.Client}" + context);
        TraceHeader.AssertPrepended(byAlice, Alice, fromAlice, context);
        TraceHeader.AssertPrepended(byBob, TestUsers.Bob, fromBob, context);
    }

    [Test]
    public async Task A_client_idle_between_transactions_gives_its_upstream_back_and_its_next_message_goes_on_a_new_session()
    {
        // Without reuse the session given back ends with QUIT, so the fake MX sees exactly when it was let go.
        var config = new DaemonConfig
        {
            Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["Relay.IdleClientReleaseSeconds"] = 1, ["Relay.ReuseConnections"] = false },
        };
        await using var s = await Scenario.StartAsync(config: config);
        var message = TestMessage.Small(From, To, "idle-release");
        var dialogue = new SmtpDialog("127.0.0.2:25")
            .Send("EHLO", "EHLO client.test\r\n")
            .Pause(3)
            .Send("MAIL", $"MAIL FROM:<{From}>\r\n")
            .Send("RCPT", $"RCPT TO:<{To}>\r\n")
            .Send("DATA", "DATA\r\n", expect: "3")
            .SendFile("BODY", Clients.WriteStuffedBody(s.Dir, message))
            .Send("QUIT", "QUIT\r\n");

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir, dialogue);

        var context = "\n" + dialog.Describe() + s.Describe() + s.RequireMx.Transcript();
        Assert.That(dialog.StoppedAt, Is.Null, context);
        Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), context);
        var events = s.RequireMx.Events();
        var connections = events.Where(e => e.GetProperty("kind").GetString() == "connect").Select(e => e.GetProperty("conn").GetString()).ToList();
        Assert.That(connections, Has.Count.EqualTo(2), "one upstream session before the pause, one opened at MAIL" + context);
        string[] CommandsOf(string? conn) => [.. events.Where(e => e.GetProperty("kind").GetString() == "command" && e.GetProperty("conn").GetString() == conn)
            .Select(e => e.GetProperty("line").GetString()!.Split(' ')[0].ToUpperInvariant())];
        Assert.That(CommandsOf(connections[0]), Is.EqualTo(new[] { "EHLO", "QUIT" }), "the first session was given back while the client sat idle" + context);
        Assert.That(CommandsOf(connections[1]), Does.Contain("MAIL").And.Contain("DATA"), context);
        var released = events.First(e => e.GetProperty("kind").GetString() == "closed" && e.GetProperty("conn").GetString() == connections[0]).GetProperty("t").GetDouble();
        var secondOpened = events.First(e => e.GetProperty("kind").GetString() == "connect" && e.GetProperty("conn").GetString() == connections[1]).GetProperty("t").GetDouble();
        Assert.That(released, Is.LessThan(secondOpened), "given back during the silence, not at the next MAIL" + context);
        var delivered = s.RequireMx.Messages();
        Assert.That(delivered, Has.Count.EqualTo(1), context);
        TraceHeader.AssertPrepended(delivered[0], Alice, message, context);
    }

    [Test]
    public async Task Mail_refused_upstream_reaches_the_client_verbatim()
    {
        const string reply = "553 5.7.1 <alice@client.test>: Sender address rejected: not owned by user";
        await using var s = await Scenario.StartAsync(new FakeMxScript { MailReply = reply });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "mail-refused"))));

        Assert.That(dialog.Reply("MAIL")?.Raw, Is.EqualTo(reply + "\r\n"), dialog.Describe() + s.Describe());
        Assert.That(s.RequireMx.Messages(), Is.Empty);
    }

    [TestCase("554 5.5.1 Error: no valid recipients")]
    [TestCase("451 4.3.0 Error: queue file write error")]
    public async Task Data_command_refused_upstream_reaches_the_client_verbatim(string reply)
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { DataReply = reply });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "data-refused"))));

        Assert.That(dialog.Reply("DATA")?.Raw, Is.EqualTo(reply + "\r\n"), dialog.Describe() + s.Describe());
        Assert.That(s.RequireMx.Messages(), Is.Empty);
    }

    [TestCase("451 4.3.0 try later")]
    [TestCase("554 5.7.1 rejected: message content looks like spam")]
    public async Task Final_dot_refusal_reaches_the_client_and_nothing_counts_as_sent(string reply)
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { FinalReply = reply });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "final-refused"))));

        var context = "\n" + dialog.Describe() + s.Describe();
        Assert.That(dialog.Reply("BODY")?.Raw, Is.EqualTo(reply + "\r\n"), context);
        Assert.That(s.RequireMx.Messages(), Is.Empty, context);
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions, Has.Count.EqualTo(1), "the refused transaction is still logged once" + context);
        Assert.That(transactions[0].Reply, Does.StartWith(reply[..3]), "logged with the upstream's reply, not as sent: " + transactions[0]);
    }

    [Test]
    public async Task A_huge_verdict_reaches_the_client_whole_while_logs_and_the_journal_keep_a_kilobyte_of_it()
    {
        // An MX she names answers 200 lines of 4,000 characters. Kept whole, each copy in the transaction line (three) and
        // the journal's row was hers to multiply by every connection: megabytes a line, and the store's cap reached.
        var reply = string.Join("\r\n", Enumerable.Range(0, 200).Select(i => $"554{(i == 199 ? ' ' : '-')}5.7.1 {new string((char)('a' + (i % 26)), 4000)}"));
        await using var s = await Scenario.StartAsync(new FakeMxScript { FinalReply = reply });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "huge-verdict"))));

        var context = "\n" + dialog.Describe()[..Math.Min(4000, dialog.Describe().Length)];
        Assert.That(dialog.Reply("BODY")?.Lines, Has.Count.EqualTo(200), "the client gets every line" + context);
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions.Single().Reply, Does.StartWith("554 5.7.1 aaaa").And.EndWith(" more characters)").And.Length.LessThan(1100), context);
        var longest = s.RequireDaemon.Transcript().Split('\n').Max(l => l.Length);
        Assert.That(longest, Is.LessThan(8 * 1024), "no log line carries the whole reply" + context);
    }

    [Test]
    public async Task Upstream_down_gives_a_4xx_promptly()
    {
        // No fake MX: nothing listens on 127.0.0.2:25, the daemon's connect is refused at once.
        await using var s = await Scenario.StartAsync(startMx: false);

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "mx-down"))));

        var failure = AssertFirstFailureIs4xx(dialog, s);
        Assert.That(failure.AtSeconds, Is.LessThan(5), "a refused upstream connect needs no timeout\n" + dialog.Describe());
    }

    [Test]
    public async Task Upstream_greeting_with_421_gives_a_4xx()
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { Greeting = "421 4.3.2 fake-mx.test Service shutting down" });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "mx-421"))));

        AssertFirstFailureIs4xx(dialog, s);
    }

    [Test]
    public async Task Upstream_that_never_greets_gives_a_4xx_within_the_reply_timeout()
    {
        const int replyTimeout = 3;
        await using var s = await Scenario.StartAsync(
            new FakeMxScript { GreetingDelaySeconds = 60 },
            new DaemonConfig { ReplyTimeoutSeconds = replyTimeout });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "mx-silent"))));

        var failure = AssertFirstFailureIs4xx(dialog, s);
        // Measured from the client's connect: the daemon may wait for the upstream greeting before or after greeting the client.
        Assert.That(failure.AtSeconds, Is.InRange(replyTimeout - 0.5, replyTimeout + 4.0),
            $"4xx expected about Relay.ReplyTimeoutSeconds={replyTimeout}s after connect\n" + dialog.Describe() + s.Describe());
    }

    [TestCase("before_final_dot")]
    [TestCase("after_final_dot")]
    public async Task Upstream_dropping_the_connection_gives_a_4xx_at_the_final_dot(string drop)
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { Drop = drop });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Build(From, To, "mx-drops", 256 * 1024))));

        var failure = AssertFirstFailureIs4xx(dialog, s);
        Assert.That(failure.Label, Is.EqualTo("BODY"), "the client learns at the final dot\n" + dialog.Describe());
        Assert.That(failure.AtSeconds, Is.LessThan(10), dialog.Describe());
    }

    [Test]
    public async Task Upstream_slow_after_the_final_dot_gives_a_4xx_within_the_data_reply_timeout()
    {
        await AssertVerdictTimesOutAsync(new FakeMxScript { FinalDelaySeconds = 60 }, "mx-slow-dot");
    }

    [Test]
    public async Task An_upstream_trickling_its_verdict_a_byte_at_a_time_gets_one_deadline_for_all_of_it()
    {
        // Each byte, and each line (about 1 s), comes well within the timeout: with a timeout per read, the verdict (a
        // 554 after 6 s) was waited for and passed on, and an MX she names could keep her transaction open as long as
        // it liked.
        var failure = await AssertVerdictTimesOutAsync(
            new FakeMxScript { FinalReply = "554-a\r\n554-b\r\n554-c\r\n554-d\r\n554-e\r\n554 f", FinalTrickleSeconds = 0.15 }, "mx-trickles");

        Assert.That(failure.Text, Does.Contain("no reply within 3 s"));
    }

    /// <summary>With Relay.DataReplyTimeoutSeconds 3, the client gets a 4xx for its message about 3 s after the final dot.</summary>
    private static async Task<DialogReply> AssertVerdictTimesOutAsync(FakeMxScript script, string subject)
    {
        const int dataTimeout = 3;
        await using var s = await Scenario.StartAsync(script, new DaemonConfig { DataReplyTimeoutSeconds = dataTimeout });

        var dialog = await Clients.DialogAsync(s.Ns, Alice, s.Dir,
            SmtpDialog.Transaction("127.0.0.2:25", From, [To], Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, subject))));

        var failure = AssertFirstFailureIs4xx(dialog, s);
        var sentAt = dialog.Reply("DATA")?.AtSeconds ?? 0;
        Assert.That(failure.Label, Is.EqualTo("BODY"), dialog.Describe());
        Assert.That(failure.AtSeconds - sentAt, Is.InRange(dataTimeout - 0.5, dataTimeout + 4.0),
            $"4xx expected about Relay.DataReplyTimeoutSeconds={dataTimeout}s after the final dot\n" + dialog.Describe() + s.Describe());
        return failure;
    }

    /// <summary>
    /// The first reply that is not 2xx/3xx must be a 4xx with text (a greeting 421 counts), the client
    /// must never see a 5xx (the failure is temporary) nor a 250 for the message, and the fake MX must
    /// hold nothing.
    /// </summary>
    private static DialogReply AssertFirstFailureIs4xx(DialogResult dialog, Scenario s)
    {
        var context = "\n" + dialog.Describe() + s.Describe();
        Assert.That(dialog.ConnectError, Is.Null, "the daemon accepted the redirected connection" + context);
        var failure = dialog.Replies.FirstOrDefault(r => r.Code is null or >= 400);
        Assert.That(failure, Is.Not.Null, "the client never saw a failure" + context);
        Assert.Multiple(() =>
        {
            Assert.That(failure!.Code, Is.InRange(400, 499), $"first failure must be a 4xx: {failure}" + context);
            Assert.That(failure.Text, Has.Length.GreaterThan(8), "a 4xx with a clear text" + context);
            Assert.That(dialog.Reply("BODY")?.Code, Is.Not.EqualTo(250), "the message must not be acknowledged" + context);
            Assert.That(dialog.Replies.Where(r => r.Code >= 500), Is.Empty, "no permanent failure for a temporary problem" + context);
            Assert.That(s.Mx?.Messages() ?? [], Is.Empty, context);
        });
        return failure!;
    }
}
