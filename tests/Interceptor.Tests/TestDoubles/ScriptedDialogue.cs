using System.Text;

namespace Interceptor.Tests.TestDoubles;

/// <summary>
/// A recorded SMTP dialogue with an upstream, in order: what the upstream sends, what it expects to receive, and how it
/// ends (closes, or falls silent). Played by <see cref="ReplayStream"/> so upstream and session unit tests run without
/// sockets. Lines get their CRLF here; <see cref="ClientBytes"/> takes raw bytes (message data).
/// </summary>
internal sealed class ScriptedDialogue
{
    internal enum StepKind
    {
        Server,
        Client,
        Message,
        Close,
        Silence,
    }

    internal sealed record Step(StepKind Kind, byte[] Bytes)
    {
        public override string ToString() => Kind switch
        {
            StepKind.Server => "S: " + Printable(Bytes),
            StepKind.Client => "C: " + Printable(Bytes),
            StepKind.Message => "C: <any message data up to the end marker>",
            _ => Kind.ToString(),
        };
    }

    private readonly List<Step> _steps = [];

    public IReadOnlyList<Step> Steps => _steps;

    /// <summary>A greeting and an EHLO reply for <paramref name="heloName"/> advertising <paramref name="extensions"/>.</summary>
    public static ScriptedDialogue Greeted(string heloName, params string[] extensions) =>
        new ScriptedDialogue().Server("220 mx.test ESMTP").Client($"EHLO {heloName}").Server(["mx.test", .. extensions], 250);

    /// <summary>One reply line sent by the upstream.</summary>
    public ScriptedDialogue Server(string line) => Add(StepKind.Server, line + "\r\n");

    /// <summary>A multi-line reply: each line with <paramref name="code"/> and '-' but the last.</summary>
    public ScriptedDialogue Server(IReadOnlyList<string> lines, int code)
    {
        var text = new StringBuilder();
        for (var i = 0; i < lines.Count; i++)
        {
            text.Append(code).Append(i == lines.Count - 1 ? ' ' : '-').Append(lines[i]).Append("\r\n");
        }

        return Add(StepKind.Server, text.ToString());
    }

    /// <summary>One command line the upstream expects next.</summary>
    public ScriptedDialogue Client(string line) => Add(StepKind.Client, line + "\r\n");

    /// <summary>Bytes the upstream expects next, exactly (message data with its end marker).</summary>
    public ScriptedDialogue ClientBytes(string bytes) => Add(StepKind.Client, bytes);

    /// <summary>Message data whatever it holds (a trace header with a fresh id), up to and including the end marker; kept in <see cref="ReplayStream.Messages"/>.</summary>
    public ScriptedDialogue ClientMessage() => Add(StepKind.Message, "");

    /// <summary>The upstream closes the connection: reads see the end of the stream, writes fail.</summary>
    public ScriptedDialogue Closes() => Add(StepKind.Close, "");

    /// <summary>
    /// The upstream keeps the connection and says nothing more: reads wait until cancelled, writes are taken as a socket
    /// takes them (kept in <see cref="ReplayStream.Unanswered"/>).
    /// </summary>
    public ScriptedDialogue FallsSilent() => Add(StepKind.Silence, "");

    private ScriptedDialogue Add(StepKind kind, string text)
    {
        _steps.Add(new Step(kind, Encoding.UTF8.GetBytes(text)));
        return this;
    }

    internal static string Printable(ReadOnlySpan<byte> bytes) =>
        Encoding.UTF8.GetString(bytes).Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
