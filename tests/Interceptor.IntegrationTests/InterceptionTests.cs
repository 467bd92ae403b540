using System.Globalization;
using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The core promise: a non-exempt user's port-25 connection is transparently relayed to where it
/// was going, with exactly one trace header naming the user and nothing else changed; exempt users
/// and connections that were not redirected are not relayed by the daemon.
/// </summary>
[TestFixture]
[CancelAfter(180_000)]
public sealed class InterceptionTests
{
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Swaks_as_alice_over_ipv4_is_relayed_once_with_her_trace_header()
    {
        await using var s = await Scenario.StartAsync();
        var from = "alice@client.test";
        var message = TestMessage.Build(from, To, "swaks-alice-v4");

        var result = await Clients.SwaksAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:25", from, To, message);

        Assert.That(result.Succeeded, Is.True, "swaks failed:\n" + result.Describe() + s.Describe());
        await AssertRelayedOnceAsync(s, TestUsers.Alice, from, message, "127.0.0.2");
    }

    [Test]
    public async Task Smtplib_as_bob_over_ipv6_is_relayed_once_with_his_trace_header()
    {
        await using var s = await Scenario.StartAsync();
        var from = "bob@client.test";
        var message = TestMessage.Build(from, To, "smtplib-bob-v6");

        var result = await Clients.SmtplibAsync(s.Ns, TestUsers.Bob, s.Dir, "[2001:db8::25]:25", from, [To], message);

        Assert.That(result.Succeeded, Is.True, "smtplib failed:\n" + result.Describe() + s.Describe());
        await AssertRelayedOnceAsync(s, TestUsers.Bob, from, message, "2001:db8::25");
    }

    [Test]
    public async Task Root_is_exempt_and_reaches_the_mx_directly()
    {
        await using var s = await Scenario.StartAsync();
        var from = "root@client.test";
        var message = TestMessage.Small(from, To, "root-direct");

        var result = await Clients.SwaksAsync(s.Ns, null, s.Dir, "127.0.0.2:25", from, To, message);

        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), s.Describe());
        Assert.That(messages[0].Text, Does.Not.Contain(TraceHeader.Name), "root's mail must not pass through the daemon");
        TestMessage.AssertSameBytes(message, messages[0].Bytes);
        // Give a (wrongly) intercepting daemon time to log, so "no line" means something.
        await Task.Delay(500);
        Assert.That(s.RequireDaemon.Transactions(), Is.Empty, s.Describe());
    }

    [TestCase("127.0.0.1:24")]
    [TestCase("[::1]:24")]
    public async Task Direct_connection_to_the_listener_gets_421_and_nothing_is_relayed(string listener)
    {
        await using var s = await Scenario.StartAsync();
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small("alice@client.test", To, "direct"));

        var dialog = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(listener, "alice@client.test", [To], body));

        var greeting = dialog.Reply("GREETING");
        Assert.Multiple(() =>
        {
            Assert.That(dialog.ConnectError, Is.Null, dialog.Describe() + s.Describe());
            Assert.That(greeting?.Code, Is.EqualTo(421), "greeting\n" + dialog.Describe() + s.Describe());
            Assert.That(greeting?.Raw, Does.StartWith("421 4.3.0 "), "greeting carries enhanced code 4.3.0\n" + dialog.Describe());
            Assert.That(dialog.Replies.Where(r => r.Label != "GREETING" && r.Code is >= 200 and < 400), Is.Empty, "nothing after the 421 may be accepted\n" + dialog.Describe());
            Assert.That(s.RequireMx.ConnectionCount, Is.Zero, "the daemon must not connect anywhere" + s.Describe());
        });
    }

    [Test]
    public async Task Postfix_smtp_sink_as_upstream_receives_alices_mail_with_trace_header()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        await using var sink = await SmtpSink.StartAsync(s.Ns, s.Dir);
        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir);
        var from = "alice@client.test";
        var message = TestMessage.Build(from, To, "sink-alice", attachmentBytes: 64 * 1024);

        var result = await Clients.SwaksAsync(s.Ns, TestUsers.Alice, s.Dir, "127.0.0.2:25", from, To, message);

        var context = "\n" + result.Describe() + "\n" + daemon.Transcript() + "\n" + sink.Transcript();
        Assert.That(result.Succeeded, Is.True, context);
        var dumps = await sink.WaitForDumpsAsync(1, TimeSpan.FromSeconds(5));
        Assert.That(dumps, Has.Count.EqualTo(1), context);
        var dump = dumps[0];
        Assert.Multiple(() =>
        {
            Assert.That(dump, Does.Contain($"X-Helo-Args: {DaemonConfig.TestHeloName}\n"), "the daemon greets upstream with Relay.HeloName" + context);
            Assert.That(dump, Does.Contain($"X-Mail-Args: <{from}>"), context);
            Assert.That(dump, Does.Contain($"X-Rcpt-Args: <{To}>"), context);
        });

        // smtp-sink stores LF line endings and puts its own Received: header first; our part starts at the trace header.
        var start = dump.IndexOf("\n" + TraceHeader.Name + ":", StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), "no trace header in the dump:\n" + dump[..Math.Min(dump.Length, 2000)]);
        var traceEnd = dump.IndexOf('\n', start + 1);
        var header = TraceHeader.TryParse(dump[(start + 1)..traceEnd]);
        Assert.That(header, Is.Not.Null, dump[(start + 1)..traceEnd]);
        Assert.That((header!.Uid, header.User), Is.EqualTo((TestUsers.Alice.Uid, TestUsers.Alice.Name)));
        var expected = Encoding.UTF8.GetString(message).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.That(dump[(traceEnd + 1)..].TrimEnd('\n'), Is.EqualTo(expected.TrimEnd('\n')), "message after the trace header, as smtp-sink stores it");
    }

    [Test]
    public async Task Transaction_size_is_the_message_size_without_transparency_dots()
    {
        await using var s = await Scenario.StartAsync();
        var from = "alice@client.test";
        // Three lines start with a dot, so the wire form is three bytes longer than the message.
        var message = Encoding.ASCII.GetBytes("Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n");
        var body = Clients.WriteStuffedBody(s.Dir, message);

        var dialog = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction("127.0.0.2:25", from, [To], body));

        Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), dialog.Describe() + s.Describe());
        var relayed = s.RequireMx.Messages().Single();
        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions, Has.Count.EqualTo(1), s.Describe());
        // RFC 1870 4: the size excludes the doubled quoting dots; with or without our trace header is the daemon's choice.
        Assert.That(transactions[0].Line.StateString("SizeBytes"), Is.AnyOf(message.Length.ToString(CultureInfo.InvariantCulture), relayed.Bytes.Length.ToString(CultureInfo.InvariantCulture)),
            $"SizeBytes for a {message.Length}-byte message ({relayed.Bytes.Length} relayed, {message.Length + 3} on the wire): {transactions[0]}");
    }

    /// <summary>The fake MX got exactly this message, with the user's trace header first, and the daemon logged it once.</summary>
    private static async Task AssertRelayedOnceAsync(Scenario s, TestUser user, string from, byte[] message, string destinationAddress)
    {
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), "the fake MX must receive exactly one message" + s.Describe());
        var relayed = messages[0];
        var header = TraceHeader.AssertPrepended(relayed, user, message, s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(relayed.MailFrom, Is.EqualTo(from), "envelope sender");
            Assert.That(relayed.RcptTo, Is.EqualTo(new[] { To }), "envelope recipients");
            Assert.That(relayed.Helo, Is.EqualTo(DaemonConfig.TestHeloName), "the daemon's EHLO name upstream");
        });

        var transactions = await s.RequireDaemon.WaitForTransactionsAsync(1);
        Assert.That(transactions, Has.Count.EqualTo(1), "one 'transaction' log line" + s.Describe());
        var logged = transactions[0];
        Assert.Multiple(() =>
        {
            Assert.That(logged.Uid, Is.EqualTo(user.Uid), "logged Uid: " + logged);
            Assert.That(logged.User, Is.EqualTo(user.Name), "logged User: " + logged);
            Assert.That(logged.Id, Is.EqualTo(header.Id), "logged Id equals the trace header's id: " + logged);
            Assert.That(logged.Sender, Does.Contain(from), "logged Sender: " + logged);
            // The contract names the key, not its form: the daemon may log the list or the count.
            Assert.That(logged.Recipients, Does.Contain(To).Or.EqualTo("1"), "logged Recipients (the list or the count): " + logged);
            Assert.That(logged.OriginalDestination, Does.Contain(destinationAddress), "logged OriginalDestination: " + logged);
            Assert.That(logged.Reply, Does.StartWith("250"), "logged Reply: " + logged);

            // The session's logging scope: every line of the session carries these, whether its template names them or not.
            Assert.That(logged.Line.ScopeString("Uid"), Is.EqualTo(user.Uid.ToString(CultureInfo.InvariantCulture)), "the session scope's Uid: " + logged);
            Assert.That(logged.Line.ScopeString("User"), Is.EqualTo(user.Name), "the session scope's User: " + logged);
            Assert.That(logged.Line.ScopeString("SessionId"), Does.Match("^[0-9]+$"), "the session scope's SessionId: " + logged);
        });
    }
}
