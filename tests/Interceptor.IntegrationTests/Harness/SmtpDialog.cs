using System.Text.Json;
using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A raw SMTP conversation for Fixtures/smtp_dialog.py: exact bytes out, every reply recorded
/// verbatim with its time. Strings are sent as latin-1, so "\r", "\n" and "\0" go out unchanged.
/// </summary>
public sealed class SmtpDialog
{
    private readonly JsonArray _steps = [];

    public SmtpDialog(string server, double timeoutSeconds = 60)
    {
        Server = server;
        TimeoutSeconds = timeoutSeconds;
    }

    public string Server { get; }
    public double TimeoutSeconds { get; }

    /// <summary>Sends <paramref name="data"/> and reads one reply; stops the dialog (QUIT) if its first digit is not in <paramref name="expect"/>.</summary>
    public SmtpDialog Send(string label, string data, string expect = "23")
    {
        _steps.Add(new JsonObject { ["label"] = label, ["send"] = data, ["expect"] = expect });
        return this;
    }

    public SmtpDialog SendFile(string label, string path, string expect = "23")
    {
        _steps.Add(new JsonObject { ["label"] = label, ["send_file"] = path, ["expect"] = expect });
        return this;
    }

    /// <summary>Sends nothing for <paramref name="seconds"/>, holding the connection open (an idle client).</summary>
    public SmtpDialog Pause(double seconds)
    {
        _steps.Add(new JsonObject { ["label"] = "PAUSE", ["pause"] = seconds });
        return this;
    }

    /// <summary>Sends and then reads every reply until the peer closes or the timeout passes (for pipelined tails).</summary>
    public SmtpDialog SendAndReadAll(string label, string data)
    {
        _steps.Add(new JsonObject { ["label"] = label, ["send"] = data, ["read_all"] = true });
        return this;
    }

    /// <summary>EHLO, MAIL, each RCPT (a refusal does not stop it), DATA, the stuffed body file, QUIT.</summary>
    public static SmtpDialog Transaction(string server, string from, IEnumerable<string> recipients, string stuffedBodyPath, double timeoutSeconds = 60)
    {
        var dialog = new SmtpDialog(server, timeoutSeconds)
            .Send("EHLO", "EHLO client.test\r\n")
            .Send("MAIL", $"MAIL FROM:<{from}>\r\n");
        foreach (var recipient in recipients)
        {
            dialog.Send("RCPT " + recipient, $"RCPT TO:<{recipient}>\r\n", expect: "245");
        }

        return dialog
            .Send("DATA", "DATA\r\n", expect: "3")
            .SendFile("BODY", stuffedBodyPath)
            .Send("QUIT", "QUIT\r\n");
    }

    public string ToJson() =>
        new JsonObject { ["server"] = Server, ["timeout"] = TimeoutSeconds, ["steps"] = _steps.DeepClone() }.ToJsonString();
}

/// <summary>One reply as the client saw it.</summary>
public sealed record DialogReply(string Label, int? Code, IReadOnlyList<string> Lines, string Raw, double AtSeconds, bool Eof, bool TimedOut, string? Error)
{
    /// <summary>The last line without the code, e.g. "5.1.1 &lt;x@y&gt;: Recipient address rejected".</summary>
    public string Text => Lines.Count == 0 ? "" : Lines[^1].Length > 4 ? Lines[^1][4..] : "";

    public override string ToString() =>
        $"{Label}@{AtSeconds:F2}s: {(Raw.Length > 0 ? Raw.TrimEnd() : "(nothing)")}{(Eof ? " [eof]" : "")}{(TimedOut ? " [timeout]" : "")}{(Error is null ? "" : " [" + Error + "]")}";
}

/// <summary>What smtp_dialog.py reported, plus the process it ran in.</summary>
public sealed record DialogResult(ProcessResult Process, string? ConnectError, IReadOnlyList<DialogReply> Replies, string? StoppedAt, double ElapsedSeconds)
{
    public DialogReply? Reply(string label) => Replies.FirstOrDefault(r => r.Label == label);

    /// <summary>The transcript for failure messages.</summary>
    public string Describe() =>
        (ConnectError is null ? "" : "connect error: " + ConnectError + "\n") +
        string.Join("\n", Replies.Select(r => r.ToString())) +
        $"\nstopped at: {StoppedAt ?? "-"}, elapsed {ElapsedSeconds:F2}s\n" +
        (Process.Succeeded ? "" : Process.Describe());

    public static DialogResult Parse(ProcessResult process)
    {
        var line = process.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        if (line is null)
        {
            Assert.Fail("smtp_dialog.py printed no result:\n" + process.Describe());
        }

        using var document = JsonDocument.Parse(line!);
        var root = document.RootElement;
        var replies = root.GetProperty("replies").EnumerateArray().Select(r => new DialogReply(
            r.GetProperty("label").GetString() ?? "",
            r.TryGetProperty("code", out var code) ? code.GetInt32() : null,
            r.TryGetProperty("lines", out var lines) ? [.. lines.EnumerateArray().Select(l => l.GetString() ?? "")] : [],
            r.TryGetProperty("raw", out var raw) ? raw.GetString() ?? "" : "",
            r.TryGetProperty("t", out var t) ? t.GetDouble() : 0,
            r.TryGetProperty("eof", out _),
            r.TryGetProperty("timeout", out _),
            r.TryGetProperty("error", out var error) ? error.GetString() : null)).ToList();
        return new DialogResult(
            process,
            root.TryGetProperty("connect_error", out var connectError) ? connectError.GetString() : null,
            replies,
            root.TryGetProperty("stopped_at", out var stoppedAt) ? stoppedAt.GetString() : null,
            root.GetProperty("elapsed").GetDouble());
    }
}
