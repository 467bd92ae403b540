using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>How the fake MX misbehaves; every null keeps the well-behaved default. See Fixtures/fake_mx.py.</summary>
public sealed record FakeMxScript
{
    public string? Greeting { get; init; }
    public double? GreetingDelaySeconds { get; init; }
    public IReadOnlyList<string>? Extensions { get; init; }
    public string? MailReply { get; init; }
    public IReadOnlyDictionary<string, string>? RcptReplies { get; init; }
    public string? DataReply { get; init; }
    public string? FinalReply { get; init; }
    public double? FinalDelaySeconds { get; init; }

    /// <summary>Seconds between the final-dot reply's bytes, sent one at a time.</summary>
    public double? FinalTrickleSeconds { get; init; }

    /// <summary>"before_final_dot" or "after_final_dot".</summary>
    public string? Drop { get; init; }

    public string ToJson()
    {
        var json = new JsonObject();
        if (Greeting is not null) { json["greeting"] = Greeting; }
        if (GreetingDelaySeconds is not null) { json["greeting_delay"] = GreetingDelaySeconds; }
        if (Extensions is not null) { json["extensions"] = new JsonArray([.. Extensions.Select(e => (JsonNode?)e)]); }
        if (MailReply is not null) { json["mail_reply"] = MailReply; }
        if (RcptReplies is not null) { json["rcpt_replies"] = new JsonObject(RcptReplies.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))); }
        if (DataReply is not null) { json["data_reply"] = DataReply; }
        if (FinalReply is not null) { json["final_reply"] = FinalReply; }
        if (FinalDelaySeconds is not null) { json["final_delay"] = FinalDelaySeconds; }
        if (FinalTrickleSeconds is not null) { json["final_trickle"] = FinalTrickleSeconds; }
        if (Drop is not null) { json["drop"] = Drop; }
        return json.ToJsonString();
    }
}

/// <summary>One message the fake MX accepted: exact bytes after dot-unstuffing, and its envelope.</summary>
public sealed record RecordedMessage(int Number, byte[] Bytes, string MailFrom, IReadOnlyList<string> RcptTo, string MailParams, string Client, string? Helo)
{
    public string Text => System.Text.Encoding.UTF8.GetString(Bytes);

    /// <summary>The first line without its CRLF (where the trace header must be).</summary>
    public string FirstLine
    {
        get
        {
            var end = Text.IndexOf("\r\n", StringComparison.Ordinal);
            return end < 0 ? Text : Text[..end];
        }
    }

    /// <summary>The header section (up to the first empty line), where a smuggled header would show.</summary>
    public string HeaderSection
    {
        get
        {
            var end = Text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            return end < 0 ? Text : Text[..(end + 2)];
        }
    }
}

/// <summary>
/// The Python fake MX (stdlib only) running as root inside the namespace, on 127.0.0.2:25 and
/// [2001:db8::25]:25 by default: addresses that are "remote" as far as the nft rule is concerned.
/// </summary>
public sealed class FakeMx : IAsyncDisposable
{
    public static readonly IReadOnlyList<string> DefaultListen = [NetworkNamespace.MxAddress4 + ":25", $"[{NetworkNamespace.MxAddress6}]:25"];

    private readonly BackgroundProcess _process;

    private FakeMx(BackgroundProcess process, string directory)
    {
        _process = process;
        Directory = directory;
    }

    /// <summary>Where messages (n.eml, n.json) and events.jsonl are written.</summary>
    public string Directory { get; }

    public static async Task<FakeMx> StartAsync(NetworkNamespace ns, TestDirectory dir, FakeMxScript? script = null, IReadOnlyList<string>? listen = null)
    {
        var output = dir.Subdirectory("fake-mx");
        var scriptPath = dir.Write("fake-mx-script.json", (script ?? new FakeMxScript()).ToJson());
        List<string> arguments = ["-I", dir.PathOf("fake_mx.py"), "--dir", output, "--script", scriptPath];
        foreach (var address in listen ?? DefaultListen)
        {
            arguments.Add("--listen");
            arguments.Add(address);
        }

        var process = ns.StartBackground("fake-mx", Requirements.Python, arguments);
        var mx = new FakeMx(process, output);
        if (await process.WaitForLineAsync(l => l.StartsWith("fake-mx ready", StringComparison.Ordinal), TimeSpan.FromSeconds(15)) is null)
        {
            var transcript = process.Transcript();
            await mx.DisposeAsync();
            Assert.Fail("fake MX did not start:\n" + transcript);
        }

        return mx;
    }

    /// <summary>Accepted messages in arrival order. A message counts once its .json exists (written last, by rename).</summary>
    public IReadOnlyList<RecordedMessage> Messages()
    {
        var messages = new List<RecordedMessage>();
        foreach (var jsonPath in System.IO.Directory.GetFiles(Directory, "*.json"))
        {
            var number = int.Parse(Path.GetFileNameWithoutExtension(jsonPath), CultureInfo.InvariantCulture);
            using var envelope = JsonDocument.Parse(File.ReadAllBytes(jsonPath));
            var root = envelope.RootElement;
            messages.Add(new RecordedMessage(
                number,
                File.ReadAllBytes(Path.ChangeExtension(jsonPath, ".eml")),
                root.GetProperty("mail_from").GetString() ?? "",
                [.. root.GetProperty("rcpt_to").EnumerateArray().Select(e => e.GetString() ?? "")],
                root.GetProperty("mail_params").GetString() ?? "",
                root.GetProperty("client").GetString() ?? "",
                root.GetProperty("helo").GetString()));
        }

        return [.. messages.OrderBy(m => m.Number)];
    }

    /// <summary>Every event (connect, command, reply, data, accepted, closed) as raw JSON lines.</summary>
    public IReadOnlyList<JsonElement> Events()
    {
        var path = Path.Combine(Directory, "events.jsonl");
        if (!File.Exists(path))
        {
            return [];
        }

        // The fake MX may be appending right now: a torn last line is skipped, not a failure.
        var events = new List<JsonElement>();
        foreach (var line in File.ReadAllLines(path).Where(l => l.Length > 0))
        {
            try
            {
                using var document = JsonDocument.Parse(line);
                events.Add(document.RootElement.Clone());
            }
            catch (JsonException)
            {
            }
        }

        return events;
    }

    public int ConnectionCount => Events().Count(e => e.GetProperty("kind").GetString() == "connect");

    /// <summary>The session log, for failure messages.</summary>
    public string Transcript()
    {
        var path = Path.Combine(Directory, "events.jsonl");
        var events = File.Exists(path) ? File.ReadAllLines(path) : [];
        var shown = events.Length > 200 ? events[^200..] : events;
        return _process.Transcript() + "\n--- fake MX events ---\n" + string.Join("\n", shown);
    }

    public async ValueTask DisposeAsync()
    {
        _process.CloseInput();
        await _process.WaitForExitAsync(TimeSpan.FromSeconds(5));
        await _process.DisposeAsync();
    }
}
