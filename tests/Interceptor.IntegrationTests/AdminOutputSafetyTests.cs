using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12 items 9 and 10: what a customer (or an upstream it chose) can put in front of the admin. Terminal escapes
/// and bidi overrides in an upstream reply must reach `smtp-interceptor log` escaped; a quoted local part must not
/// make the readable log message name another user; an existing state directory that is open to all is tightened.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed partial class AdminOutputSafetyTests
{
    private const string Mx = "127.0.0.2:25";
    private const string To = "rcpt@example.test";

    /// <summary>Clears the screen, paints red, and reverses what follows (U+202E), as the issue's repro did.</summary>
    private const string HostileReplyText = "Ok \u001b[2J\u001b[1;31m FAKE ADMIN NOTICE \u202egnp.exe\u009b";

    /// <summary>What the upstream parser makes of it: each C0 and C1 control a '?', the bidi override (a format character) kept.</summary>
    private const string StoredReplyText = "Ok ?[2J?[1;31m FAKE ADMIN NOTICE \u202egnp.exe?";

    [Test]
    public async Task Control_characters_from_an_upstream_reply_become_question_marks_and_a_bidi_override_is_shown_escaped_by_the_log_command()
    {
        await using var s = await Scenario.StartAsync(new FakeMxScript { FinalReply = "250 2.0.0 " + HostileReplyText });
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small("alice@client.test", To, "escapes"));

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, "alice@client.test", [To], body, timeoutSeconds: 20));
        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), result.Describe() + s.Describe());
        await s.RequireDaemon.WaitForTransactionsAsync(1);

        // The outcome rides with the store's next batch: wait until the log shows the final reply.
        ProcessResult text = null!;
        for (var attempt = 0; attempt < 50; attempt++)
        {
            text = await PolicyTestSupport.CliAsync(s.Ns, s.RequireDaemon, "log");
            if (text.Stdout.Contains("FAKE ADMIN NOTICE", StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(100);
        }

        var json = await PolicyTestSupport.CliAsync(s.Ns, s.RequireDaemon, "log", "--json");
        var context = "\n" + text.Describe() + s.Describe();
        var raw = text.Stdout.Where(c => c != '\n' && (char.IsControl(c) || char.GetUnicodeCategory(c) == UnicodeCategory.Format)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(text.ExitCode, Is.Zero, context);
            Assert.That(raw.Select(c => ((int)c).ToString("x4", CultureInfo.InvariantCulture)), Is.Empty, "raw control or formatting characters in the text output" + context);
            Assert.That(text.Stdout, Does.Contain(@"Ok ?[2J?[1;31m FAKE ADMIN NOTICE \u202egnp.exe?"), "controls as '?', the override shown escaped" + context);
        });

        using var document = JsonDocument.Parse(json.Stdout);
        var reply = document.RootElement.GetProperty("transactions")[0].GetProperty("reply").GetString();
        Assert.That(reply, Does.EndWith(StoredReplyText), "--json keeps the text as stored\n" + json.Describe());
    }

    [Test]
    public async Task A_quoted_local_part_cannot_make_the_log_message_name_another_user()
    {
        const string spoof = "\"x> uid=0 user=root from=<y\"@bank.example";
        await using var s = await Scenario.StartAsync();
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small("x@bank.example", To, "spoof"));

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, spoof, [To], body, timeoutSeconds: 20));
        Assert.That(result.Reply("MAIL")?.Code, Is.EqualTo(250), "the address is valid SMTP (a quoted local part)\n" + result.Describe() + s.Describe());

        var line = (await s.RequireDaemon.WaitForTransactionsAsync(1)).Single();
        var message = line.Line.Message;
        var context = $"\nmessage: {message}\n{result.Describe()}{s.Describe()}";
        Assert.Multiple(() =>
        {
            Assert.That(Field("uid").Matches(message).Select(m => m.Groups[1].Value), Is.EqualTo(new[] { TestUsers.Alice.Uid.ToString(CultureInfo.InvariantCulture) }),
                "the plain message has one uid=, alice's" + context);
            Assert.That(Field("user").Matches(message).Select(m => m.Groups[1].Value), Is.EqualTo(new[] { TestUsers.Alice.Name }), "one user=, alice's" + context);
            Assert.That(Field("from").Count(message), Is.EqualTo(1), "one from=" + context);
            Assert.That(line.Uid, Is.EqualTo(TestUsers.Alice.Uid), "JSON Uid" + context);
            Assert.That(line.User, Is.EqualTo(TestUsers.Alice.Name), "JSON User" + context);
            Assert.That(line.Sender, Is.EqualTo(spoof), "JSON Sender is the exact address" + context);
        });
    }

    [Test]
    public async Task A_state_directory_open_to_everybody_is_tightened_to_0750_at_start_and_the_database_to_0640()
    {
        await using var s = await Scenario.StartAsync(startDaemon: false);
        var state = Path.Combine(s.Dir.Path, "state");
        Directory.CreateDirectory(state);
        File.SetUnixFileMode(state, (UnixFileMode)0b111_111_111);

        await using var daemon = await DaemonProcess.StartAsync(s.Ns, s.Dir, new DaemonConfig
        {
            Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["State.Directory"] = state },
        });

        var context = "\n" + daemon.Transcript();
        var files = Directory.GetFiles(state).Select(f => (Path.GetFileName(f), File.GetUnixFileMode(f))).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(Octal(File.GetUnixFileMode(state)), Is.EqualTo("750"), "State.Directory mode" + context);
            Assert.That(files, Is.Not.Empty, context);
            foreach (var (name, mode) in files)
            {
                Assert.That(Octal(mode & (UnixFileMode)0b000_010_111), Is.EqualTo("0"), $"{name} is {Octal(mode)}: no group write, nothing for others" + context);
            }

            Assert.That(daemon.LogLines().Any(l => l.Message.Contains("tightened", StringComparison.Ordinal) && l.Message.Contains(state, StringComparison.Ordinal)),
                Is.True, "the daemon says it tightened the directory" + context);
        });
    }

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8);

    /// <summary>A "name=value" field as a reader splitting on spaces finds it (value up to the next space).</summary>
    private static Regex Field(string name) => new($@"(?:^|\s){name}=(\S+)", RegexOptions.CultureInvariant);
}
