using System.Net;
using System.Text;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>
/// <see cref="UpstreamConnection"/> against recorded dialogues (no sockets): each typed operation, what it puts on the
/// wire, the reply it returns and the <see cref="UpstreamState"/> it leaves.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class UpstreamConnectionDialogueTests
{
    internal const string Helo = "relay.test";
    internal static readonly IPEndPoint Mx = ScriptedConnector.Mx;
    internal static readonly UpstreamSettings Settings = new(Helo, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

    internal static async Task<UpstreamConnection> OpenAsync(ScriptedConnector connector, UpstreamSettings? settings = null)
    {
        var (connection, refusal) = await UpstreamConnection.OpenAsync(Mx, settings ?? Settings, connector, CancellationToken.None);
        Assert.That(refusal, Is.Null, "the upstream refused the session");
        return connection!;
    }

    [Test]
    public async Task A_multi_line_ehlo_reply_read_in_small_pieces_gives_the_capabilities()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8")) { ReadChunk = 5 };

        await using var connection = await OpenAsync(connector);

        Assert.That(connection.State, Is.EqualTo(UpstreamState.Ready));
        Assert.That(connection.Capabilities, Is.EqualTo(new UpstreamCapabilities(true, true, 10240000, true, true, false, true)));
        Assert.That(connection.Description, Is.EqualTo("192.0.2.25:25"));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task An_upstream_that_refuses_ehlo_gets_helo_and_is_assumed_basic()
    {
        var connector = new ScriptedConnector(new ScriptedDialogue()
            .Server("220 old.test SMTP").Client($"EHLO {Helo}").Server("502 5.5.2 what?").Client($"HELO {Helo}").Server("250 old.test"));

        await using var connection = await OpenAsync(connector);

        Assert.That(connection.Capabilities, Is.EqualTo(UpstreamCapabilities.Basic));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_refusing_greeting_is_a_reply_value_and_the_connection_is_closed()
    {
        var connector = new ScriptedConnector(new ScriptedDialogue().Server(["mx.test busy", "try later"], 554));

        var (connection, refusal) = await UpstreamConnection.OpenAsync(Mx, Settings, connector, CancellationToken.None);

        Assert.That(connection, Is.Null);
        Assert.That(refusal!.ToWire(), Is.EqualTo("554-mx.test busy\r\n554 try later\r\n"));
        Assert.That(connector.Connections.Single().Replay.Disposed, Is.True);
    }

    [Test]
    public async Task A_whole_transaction_moves_through_the_states_and_puts_exactly_the_commands_on_the_wire()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "SIZE")
            .Client("MAIL FROM:<a@customer.test> SIZE=12").Server("250 2.1.0 Ok")
            .Client("RCPT TO:<b@example.net>").Server("250 2.1.5 Ok")
            .Client("DATA").Server("354 End data with <CR><LF>.<CR><LF>")
            .ClientBytes("Subject: x\r\n\r\nbody\r\n.\r\n").Server(["2.0.0 Ok: queued as 1", "2.0.0 thanks"], 250));
        await using var connection = await OpenAsync(connector);
        var states = new List<UpstreamState>();

        var mail = await connection.MailAsync("<a@customer.test> SIZE=12", CancellationToken.None);
        states.Add(connection.State);
        var rcpt = await connection.RcptAsync("<b@example.net>", CancellationToken.None);
        states.Add(connection.State);
        var data = await connection.DataAsync(CancellationToken.None);
        states.Add(connection.State);
        await connection.WriteDataAsync(Encoding.ASCII.GetBytes("Subject: x\r\n\r\n"), CancellationToken.None);
        states.Add(connection.State);
        var verdict = await connection.FinishDataAsync(Encoding.ASCII.GetBytes("body\r\n.\r\n"), CancellationToken.None);
        states.Add(connection.State);

        Assert.That(new[] { mail.Code, rcpt.Code, data.Code, verdict.Code }, Is.EqualTo(new[] { 250, 250, 354, 250 }));
        Assert.That(verdict.EnhancedCode, Is.EqualTo("2.0.0"));
        Assert.That(verdict.Lines, Is.EqualTo(new[] { "Ok: queued as 1", "thanks" }));
        Assert.That(states, Is.EqualTo(new[] { UpstreamState.InTransaction, UpstreamState.InTransaction, UpstreamState.InData, UpstreamState.InData, UpstreamState.Ready }));
        Assert.That(connection.Messages, Is.EqualTo(1));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_watched_session_tells_each_reply_with_the_transactions_paths_as_sent()
    {
        // What the relay pool strips from a refusal before taking it for a block notice: her paths, quoted local parts
        // with spaces and brackets whole, without their parameters; a new MAIL starts them afresh.
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "SIZE")
            .Client("MAIL FROM:<old@customer.test>").Server("250 ok")
            .Client("RSET").Server("250 ok")
            .Client("MAIL FROM:<\"a<S3150 b\"@customer.test> SIZE=12").Server("250 ok")
            .Client("RCPT TO:<\"x> y\"@example.net> NOTIFY=NEVER").Server("553 5.7.1 no"));
        await using var connection = await OpenAsync(connector);
        var watcher = new RecordingWatcher();
        connection.Watcher = watcher;

        await connection.MailAsync("<old@customer.test>", CancellationToken.None);
        await connection.RsetAsync(CancellationToken.None);
        await connection.MailAsync("<\"a<S3150 b\"@customer.test> SIZE=12", CancellationToken.None);
        await connection.RcptAsync("<\"x> y\"@example.net> NOTIFY=NEVER", CancellationToken.None);

        Assert.That(watcher.Seen.Select(s => (s.Step, s.Code)), Is.EqualTo(new[] { (UpstreamStep.Mail, 250), (UpstreamStep.Mail, 250), (UpstreamStep.Rcpt, 553) }));
        Assert.That(watcher.Seen[^1].Envelope, Is.EqualTo(new[] { "<\"a<S3150 b\"@customer.test>", "<\"x> y\"@example.net>" }));
        connector.AssertPlayedOut();
    }

    private sealed class RecordingWatcher : IUpstreamReplyWatcher
    {
        public List<(UpstreamStep Step, int Code, string[] Envelope)> Seen { get; } = [];

        public void Replied(UpstreamConnection connection, UpstreamStep command, Interceptor.Core.Replies.SmtpReply reply) =>
            Seen.Add((command, reply.Code, [.. connection.Envelope]));
    }

    [Test]
    public async Task Refusals_leave_the_state_each_reply_implies()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<spam@customer.test>").Server("550 5.7.1 no")
            .Client("MAIL FROM:<a@customer.test>").Server("250 ok")
            .Client("RCPT TO:<gone@example.net>").Server("550 5.1.1 no such user")
            .Client("DATA").Server("554 5.5.1 no valid recipients")
            .Client("RSET").Server("250 2.0.0 flushed"));
        await using var connection = await OpenAsync(connector);

        await connection.MailAsync("<spam@customer.test>", CancellationToken.None);
        Assert.That(connection.State, Is.EqualTo(UpstreamState.Ready), "a refused MAIL starts no transaction");
        await connection.MailAsync("<a@customer.test>", CancellationToken.None);
        await connection.RcptAsync("<gone@example.net>", CancellationToken.None);
        Assert.That(connection.State, Is.EqualTo(UpstreamState.InTransaction), "a refused RCPT leaves the transaction open");
        await connection.DataAsync(CancellationToken.None);
        Assert.That(connection.State, Is.EqualTo(UpstreamState.InTransaction), "a refused DATA may leave the upstream's transaction open");
        var reset = await connection.RsetAsync(CancellationToken.None);

        Assert.That(reset.Code, Is.EqualTo(250));
        Assert.That(connection.State, Is.EqualTo(UpstreamState.Ready));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_421_breaks_the_session_and_nothing_more_is_sent_on_it()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo)
            .Client("MAIL FROM:<a@customer.test>").Server("421 4.3.2 shutting down").Closes());
        await using var connection = await OpenAsync(connector);

        var reply = await connection.MailAsync("<a@customer.test>", CancellationToken.None);

        Assert.That(reply.Code, Is.EqualTo(421));
        Assert.That(connection.State, Is.EqualTo(UpstreamState.Broken));
        Assert.That(connection.IsUsable, Is.False);
        Assert.ThrowsAsync<UpstreamConnectionLostException>(() => connection.RsetAsync(CancellationToken.None));
        await connection.QuitAsync(CancellationToken.None);
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_silent_upstream_times_out_and_the_session_is_dropped()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<a@customer.test>").FallsSilent());
        await using var connection = await OpenAsync(connector);

        var failure = Assert.ThrowsAsync<UpstreamTimeoutException>(() => connection.MailAsync("<a@customer.test>", CancellationToken.None));

        Assert.That(failure!.Message, Is.EqualTo("no reply within 1 s"));
        Assert.That(connection.State, Is.EqualTo(UpstreamState.Closed));
        Assert.That(connector.Connections.Single().Aborted, Is.True);
    }

    [Test]
    public async Task A_connection_closed_mid_reply_is_lost_and_a_garbled_reply_is_a_protocol_failure()
    {
        var connector = new ScriptedConnector(
            ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<a@customer.test>").Closes(),
            ScriptedDialogue.Greeted(Helo).Client("MAIL FROM:<a@customer.test>").Server("250-first\r\n251 second"));
        await using var lost = await OpenAsync(connector);
        await using var garbled = await OpenAsync(connector);

        var closed = Assert.ThrowsAsync<UpstreamConnectionLostException>(() => lost.MailAsync("<a@customer.test>", CancellationToken.None));
        var mixed = Assert.ThrowsAsync<UpstreamProtocolException>(() => garbled.MailAsync("<a@customer.test>", CancellationToken.None));

        Assert.That(closed!.Message, Is.EqualTo("connection closed by the upstream"));
        Assert.That(mixed!.Message, Is.EqualTo("reply code changed inside a multi-line reply (250 then 251)"));
        Assert.That(new[] { lost.State, garbled.State }, Is.All.EqualTo(UpstreamState.Closed));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task Operations_out_of_order_are_programming_errors_and_send_nothing()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo));
        await using var connection = await OpenAsync(connector);

        Assert.ThrowsAsync<InvalidOperationException>(() => connection.RcptAsync("<b@example.net>", CancellationToken.None));
        Assert.ThrowsAsync<InvalidOperationException>(() => connection.DataAsync(CancellationToken.None));
        Assert.ThrowsAsync<InvalidOperationException>(() => connection.WriteDataAsync(new byte[] { 65 }, CancellationToken.None));
        Assert.ThrowsAsync<ArgumentException>(() => connection.FinishDataAsync("no end marker"u8.ToArray(), CancellationToken.None));
        Assert.That(connection.State, Is.EqualTo(UpstreamState.Ready));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task Quit_is_sent_without_waiting_for_its_reply_and_closes_the_session()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo).Client("QUIT").FallsSilent());
        await using var connection = await OpenAsync(connector);

        await connection.QuitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));

        Assert.That(connection.State, Is.EqualTo(UpstreamState.Closed));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task An_idle_session_with_something_unasked_waiting_does_not_look_open()
    {
        var connector = new ScriptedConnector(
            ScriptedDialogue.Greeted(Helo).Server("421 4.4.2 idle too long").Closes(),
            ScriptedDialogue.Greeted(Helo).Client("QUIT"));
        await using var closing = await OpenAsync(connector);
        await using var quiet = await OpenAsync(connector);

        Assert.That(closing.LooksIdleAndOpen(), Is.False);
        Assert.That(quiet.LooksIdleAndOpen(), Is.True);
        await quiet.QuitAsync(CancellationToken.None);
    }

    [Test]
    public async Task Starttls_offered_but_not_wanted_is_not_used()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "STARTTLS", "8BITMIME"));

        await using var connection = await OpenAsync(connector, Settings with { UseStartTls = false });

        Assert.That(connection.IsTls, Is.False);
        Assert.That(connection.Capabilities.StartTls, Is.True);
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task Starttls_refused_by_the_upstream_continues_in_plain_text_with_the_first_ehlo()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "STARTTLS", "8BITMIME")
            .Client("STARTTLS").Server("454 4.7.0 TLS not available"));

        await using var connection = await OpenAsync(connector);

        Assert.That(connection.IsTls, Is.False);
        Assert.That(connection.Capabilities.EightBitMime, Is.True);
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task A_failed_tls_handshake_is_retried_in_plain_text_on_a_new_connection()
    {
        // The upstream says 220 to STARTTLS, then hangs up on the TLS ClientHello.
        var connector = new ScriptedConnector(
            ScriptedDialogue.Greeted(Helo, "STARTTLS").Client("STARTTLS").Server("220 2.0.0 Ready to start TLS").Closes(),
            ScriptedDialogue.Greeted(Helo, "STARTTLS"));

        await using var connection = await OpenAsync(connector);

        Assert.That(connector.Connections, Has.Count.EqualTo(2));
        Assert.That(connector.Connections[0].Replay.Disposed, Is.True);
        Assert.That(connection.IsTls, Is.False);
        Assert.That(connector.Connections[1].Replay.Deviation, Is.Null, "no STARTTLS on the plain-text retry");
        Assert.That(connector.Connections[1].Replay.Remaining, Is.Empty);
    }
}
