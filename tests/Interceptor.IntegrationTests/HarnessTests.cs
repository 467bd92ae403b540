using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The harness checked on its own, without the daemon: root's connections are never redirected,
/// and here no daemon even runs, so these prove that the clients, the fake MX and smtp-sink do
/// what the daemon tests assume (byte-exact recording, strict end of data, scripted replies).
/// When one of these fails, the daemon tests' failures mean nothing.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class HarnessTests
{
    private const string From = "root@client.test";
    private const string To = "rcpt@example.test";

    [Test]
    public async Task Fake_mx_records_swaks_message_byte_for_byte()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var message = TestMessage.Build(From, To, "harness-swaks");

        var result = await Clients.SwaksAsync(s.Ns, null, s.Dir, "127.0.0.2:25", From, To, message);

        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), s.Describe());
        TestMessage.AssertSameBytes(message, messages[0].Bytes);
        Assert.That(messages[0].MailFrom, Is.EqualTo(From));
        Assert.That(messages[0].RcptTo, Is.EqualTo(new[] { To }));
    }

    [Test]
    public async Task Fake_mx_records_smtplib_message_over_ipv6_byte_for_byte()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var message = TestMessage.Build(From, To, "harness-smtplib");

        var result = await Clients.SmtplibAsync(s.Ns, null, s.Dir, "[2001:db8::25]:25", From, [To], message);

        Assert.That(result.Succeeded, Is.True, result.Describe() + s.Describe());
        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), s.Describe());
        TestMessage.AssertSameBytes(message, messages[0].Bytes);
        Assert.That(messages[0].Client, Does.StartWith("2001:db8::25:"));
    }

    /// <summary>
    /// The checkout may sit where other users cannot go (a clone under /root, mode 0700): what a test runs as another
    /// user must come from the test directory. Here nobody runs the daemon copy and a fixture from it.
    /// </summary>
    [Test]
    public async Task Nobody_runs_the_daemon_copy_and_the_fixtures_from_the_test_directory()
    {
        Requirements.Ensure();
        using var dir = new TestDirectory();
        var asNobody = new[] { "--reuid=65534", "--regid=65534", "--clear-groups" };

        var daemon = await ProcessRunner.RunAsync("setpriv", [.. asNobody, DaemonProcess.DotnetHost, dir.DaemonAssemblyForOtherUsers, "version"], TimeSpan.FromSeconds(60), cleanEnvironment: true);
        var fixture = await ProcessRunner.RunAsync("setpriv", [.. asNobody, Requirements.Python, "-I", dir.PathOf("send_smtplib.py"), "--help"], TimeSpan.FromSeconds(30), cleanEnvironment: true);

        Assert.Multiple(() =>
        {
            Assert.That(dir.DaemonAssemblyForOtherUsers, Does.StartWith(dir.Path + "/"));
            Assert.That(daemon.Succeeded, Is.True, daemon.Describe());
            Assert.That(fixture.Succeeded, Is.True, fixture.Describe());
        });
    }

    [Test]
    public async Task Fake_mx_ends_data_only_at_crlf_dot_crlf()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var payload = "Subject: real\r\n\r\nbody\n.\nMAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n";
        var body = s.Dir.Write("raw.txt", Encoding.ASCII.GetBytes(payload));

        var dialog = await Clients.DialogAsync(s.Ns, null, s.Dir, SmtpDialog.Transaction("127.0.0.2:25", From, [To], body));

        var messages = s.RequireMx.Messages();
        Assert.That(messages, Has.Count.EqualTo(1), dialog.Describe() + s.Describe());
        Assert.That(messages[0].Text, Is.EqualTo(payload[..^3]), "the whole payload, bare LFs included, is one message");
        Assert.That(dialog.Reply("BODY")?.Code, Is.EqualTo(250), dialog.Describe());
    }

    [Test]
    public async Task Fake_mx_scripted_replies_reach_the_client_verbatim()
    {
        var script = new FakeMxScript
        {
            RcptReplies = new Dictionary<string, string> { ["nouser@example.test"] = "550 5.1.1 <nouser@example.test>: Recipient address rejected: no such user" },
            FinalReply = "451 4.3.0 try later",
        };
        await using var s = await Scenario.StartAsync(script, startDaemon: false);
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "scripted"));

        var dialog = await Clients.DialogAsync(s.Ns, null, s.Dir, SmtpDialog.Transaction("127.0.0.2:25", From, [To, "nouser@example.test"], body));

        Assert.Multiple(() =>
        {
            Assert.That(dialog.Reply("RCPT nouser@example.test")?.Raw, Is.EqualTo("550 5.1.1 <nouser@example.test>: Recipient address rejected: no such user\r\n"), dialog.Describe());
            Assert.That(dialog.Reply("BODY")?.Raw, Is.EqualTo("451 4.3.0 try later\r\n"), dialog.Describe());
            Assert.That(s.RequireMx.Messages(), Is.Empty, "a refused message is not recorded");
        });
    }

    [Test]
    public async Task Smtp_sink_accepts_mail_as_an_upstream()
    {
        await using var ns = await NetworkNamespace.CreateAsync();
        using var dir = new TestDirectory();
        await using var sink = await SmtpSink.StartAsync(ns, dir);

        var message = TestMessage.Build(From, To, "sink-check", attachmentBytes: 64 * 1024);

        var result = await Clients.SwaksAsync(ns, null, dir, "127.0.0.2:25", From, To, message);

        Assert.That(result.Succeeded, Is.True, result.Describe() + sink.Transcript());
        var dumps = await sink.WaitForDumpsAsync(1, TimeSpan.FromSeconds(5));
        Assert.That(dumps, Has.Count.EqualTo(1), sink.Transcript());
        // The daemon test compares the same way: LF endings, dots unstuffed, after smtp-sink's own lines.
        var expected = Encoding.UTF8.GetString(message).Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd('\n');
        Assert.That(dumps[0].TrimEnd('\n'), Does.EndWith("\n" + expected));
    }
}
