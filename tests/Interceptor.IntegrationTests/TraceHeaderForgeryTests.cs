using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 12 item 6 and the trace-header part of item 10: smtpi-alice tries to make the trace header lie, by
/// folding her first line into it, by sending her own X-Interceptor-Origin headers, and (with Trace.IncludeProcess)
/// by running from a working directory whose name reads like header fields. What the fake MX received is parsed
/// as a receiver parses it: Python's email package with policy.default.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed partial class TraceHeaderForgeryTests
{
    private const string Mx = "127.0.0.2:25";
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";

    /// <summary>Prints the X-Interceptor-Origin values (unfolded, as a receiver reads them) and the renamed ones as JSON.</summary>
    private const string ParseScript = """
        import email, json, sys
        from email import policy
        with open(sys.argv[1], "rb") as f:
            message = email.message_from_binary_file(f, policy=policy.default)
        print(json.dumps({
            "origin": [str(v) for v in (message.get_all("X-Interceptor-Origin") or [])],
            "client": [str(v) for v in (message.get_all("X-Interceptor-Client-Origin") or [])],
            "subject": str(message.get("Subject")),
        }))
        """;

    [Test]
    public async Task A_clients_own_origin_headers_are_renamed_and_a_receiver_reads_only_the_daemons()
    {
        await using var s = await Scenario.StartAsync();
        // Three spellings a receiver may take for the header: one with a continuation line, one behind a transparency
        // dot (the MX removes it, so it arrives as "X-Interceptor-Origin:"), and one with a space before the colon
        // (obsolete syntax, RFC 5322 4.5.3) last, since Python's parser ends the header section at it.
        var message = Encoding.ASCII.GetBytes(
            "X-Interceptor-Origin: uid=0 user=root; host=trusted-relay.example;\r\n id=forged-1\r\n" +
            "From: <alice@client.test>\r\n" +
            ".X-Interceptor-Origin: uid=0 user=root; host=trusted-relay.example; id=forged-2\r\n" +
            "Subject: forged origin\r\n" +
            "x-interceptor-ORIGIN : uid=0 user=root; host=trusted-relay.example; id=forged-3\r\n\r\nbody\r\n");
        var body = s.Dir.Write("forged.txt", [.. message, .. ".\r\n"u8]);

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, From, [To], body, timeoutSeconds: 20));

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
        var id = (await s.RequireDaemon.WaitForTransactionsAsync(1)).Single().Id;
        var received = s.RequireMx.Messages().Single();
        var parsed = await ParseAsReceiverAsync(s, received);
        Assert.Multiple(() =>
        {
            Assert.That(parsed.Origin, Is.EqualTo(new[] { $"uid={TestUsers.Alice.Uid} user={TestUsers.Alice.Name}; host={DaemonConfig.TestHeloName}; id={id}" }),
                "exactly one X-Interceptor-Origin, the daemon's, naming alice and the logged id" + context);
            Assert.That(parsed.Client, Has.Count.EqualTo(2), "the client's headers are kept as X-Interceptor-Client-Origin" + context);
            Assert.That(received.HeaderSection, Does.Contain("\r\nx-interceptor-Client-ORIGIN : uid=0"), "the third one is renamed too" + context);
            Assert.That(OriginLine().Count(received.HeaderSection), Is.EqualTo(1), "one line in the header section starts with X-Interceptor-Origin, in any case" + context);
            Assert.That(parsed.Client[0], Does.Contain("id=forged-1"), "the continuation line stays with the renamed header" + context);
            Assert.That(parsed.Subject, Is.EqualTo("forged origin"), "the rest of the header section is intact" + context);
        });
    }

    [TestCase(" uid=0 user=root; host=trusted-relay.example")]
    [TestCase("\tuid=0 user=root; host=trusted-relay.example")]
    public async Task A_first_line_that_would_fold_into_the_trace_header_is_refused_with_550_and_nothing_is_relayed(string firstLine)
    {
        await using var s = await Scenario.StartAsync();
        var body = s.Dir.Write("fold.txt", Encoding.ASCII.GetBytes(firstLine + "\r\nSubject: folded\r\n\r\nbody\r\n.\r\n"));

        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, From, [To], body, timeoutSeconds: 20));

        var context = "\n" + result.Describe() + s.Describe();
        var received = s.RequireMx.Messages();
        var parsed = received.Count == 1 ? (await ParseAsReceiverAsync(s, received[0])).Origin : [];
        Assert.Multiple(() =>
        {
            Assert.That(result.Reply("BODY")?.Raw, Does.StartWith("550 5.6.0").And.Contain("first line starts with a space or tab"), context);
            Assert.That(received, Is.Empty, $"nothing relayed; the MX read X-Interceptor-Origin as {string.Join(" | ", parsed)}" + context);
            Assert.That(result.Reply("QUIT")?.Code, Is.EqualTo(221), "the session stays in sync" + context);
        });
    }

    /// <summary>
    /// Trace.IncludeProcess copies the client's working directory into the header. A directory named like header
    /// fields must come out escaped: the header still parses to alice alone.
    /// </summary>
    [Test]
    public async Task A_working_directory_named_like_header_fields_is_escaped_in_the_trace_header()
    {
        const string craftedName = "x uid=0 user=root; host=evil";
        await using var s = await Scenario.StartAsync(config: new DaemonConfig
        {
            Settings = new Dictionary<string, JsonNode?> { ["Trace.IncludeProcess"] = true },
        });
        var crafted = s.Dir.Subdirectory(craftedName, worldWritable: true);
        var body = Clients.WriteStuffedBody(s.Dir, TestMessage.Small(From, To, "crafted-cwd"));
        // A pause after EHLO gives the background process lookup time to finish before DATA renders the header.
        var dialog = new HostileDialog(Mx, timeoutSeconds: 20)
            .SendAndRead("EHLO", "EHLO client.test\r\n")
            .Sleep("WAIT", 1.5)
            .SendAndRead("MAIL", $"MAIL FROM:<{From}>\r\n")
            .SendAndRead("RCPT", $"RCPT TO:<{To}>\r\n")
            .SendAndRead("DATA", "DATA\r\n")
            .SendAndRead("BODY", File.ReadAllText(body, Encoding.Latin1))
            .SendAndRead("QUIT", "QUIT\r\n");
        var dialogFile = s.Dir.Write("cwd-dialog.json", dialog.ToJson());

        var process = await s.Ns.RunAsUserAsync(TestUsers.Alice, "/bin/sh",
            ["-c", "cd \"$1\" && exec /usr/bin/python3 -I \"$2\" \"$3\"", "sh", crafted, s.Dir.PathOf("hostile_client.py"), dialogFile], TimeSpan.FromSeconds(60));
        var result = DialogResult.Parse(process);

        var context = "\n" + result.Describe() + s.Describe();
        Assert.That(result.Reply("BODY")?.Code, Is.EqualTo(250), context);
        var origin = (await ParseAsReceiverAsync(s, s.RequireMx.Messages().Single())).Origin;
        Assert.That(origin, Has.Count.EqualTo(1), context);
        var value = origin[0];
        context = $"\nheader value: {value}{context}";
        Assert.Multiple(() =>
        {
            Assert.That(UidField().Matches(value).Select(m => m.Groups[1].Value), Is.EqualTo(new[] { TestUsers.Alice.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture) }),
                "exactly one uid= field, alice's" + context);
            Assert.That(UserField().Matches(value).Select(m => m.Groups[1].Value), Is.EqualTo(new[] { TestUsers.Alice.Name }), "exactly one user= field, alice's" + context);
            Assert.That(HostField().Matches(value).Select(m => m.Groups[1].Value), Is.EqualTo(new[] { DaemonConfig.TestHeloName }), "exactly one host= field, ours" + context);
            Assert.That(value, Does.Contain(" cwd=" + s.Dir.Path + "/x%20uid%3D0%20user%3Droot%3B%20host%3Devil"),
                "the working directory is there, percent-encoded" + context);
        });
    }

    private sealed record ReceivedHeaders(IReadOnlyList<string> Origin, IReadOnlyList<string> Client, string Subject);

    private static async Task<ReceivedHeaders> ParseAsReceiverAsync(Scenario s, RecordedMessage message)
    {
        var eml = s.Dir.Write($"received-{message.Number}.eml", message.Bytes);
        var script = s.Dir.Write("parse_headers.py", ParseScript);
        var run = await ProcessRunner.RunAsync(Requirements.Python, ["-I", script, eml], TimeSpan.FromSeconds(30));
        Assert.That(run.Succeeded, Is.True, run.Describe());
        var json = JsonNode.Parse(run.Stdout)!;
        return new ReceivedHeaders(
            [.. json["origin"]!.AsArray().Select(v => v!.GetValue<string>())],
            [.. json["client"]!.AsArray().Select(v => v!.GetValue<string>())],
            json["subject"]!.GetValue<string>());
    }

    [GeneratedRegex(@"^X-Interceptor-Origin\s*:", RegexOptions.Multiline | RegexOptions.IgnoreCase)]
    private static partial Regex OriginLine();

    // A field as a reader splitting on "; " and spaces finds it: at the start or after a space or ';'.
    [GeneratedRegex(@"(?:^|[\s;])uid=(\S+)")]
    private static partial Regex UidField();

    [GeneratedRegex(@"(?:^|[\s;])user=(\S+?);?(?=\s|$)")]
    private static partial Regex UserField();

    [GeneratedRegex(@"(?:^|[\s;])host=(\S+?);?(?=\s|$)")]
    private static partial Regex HostField();
}
