using System.Text;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Where the scripted upstream hangs up on the relay (an abortive close, as a crashed server would).</summary>
internal enum UpstreamDrop
{
    None,

    /// <summary>Accept the connection and reset it before the greeting.</summary>
    OnConnect,

    /// <summary>Reset the connection when the MAIL command arrives, without a reply.</summary>
    AtMail,

    /// <summary>Reset the connection once <see cref="UpstreamScript.DropAfterDataBytes"/> DATA bytes arrived.</summary>
    DuringData,

    /// <summary>Reset the connection right after the final dot, without a reply.</summary>
    AfterFinalDot,
}

/// <summary>
/// What one scripted upstream session answers. Replies are written as given ("250 2.1.0 text");
/// a multi-line reply is given with "\r\n" between its lines.
/// </summary>
internal sealed record UpstreamScript
{
    public static readonly IReadOnlyList<string> StandardExtensions =
        ["PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"];

    public string Greeting { get; init; } = "220 mx.upstream.test ESMTP scripted";

    /// <summary>Accept the connection and never say anything.</summary>
    public bool NeverGreet { get; init; }

    /// <summary>EHLO keywords after the first line; empty gives a one-line EHLO reply.</summary>
    public IReadOnlyList<string> Extensions { get; init; } = StandardExtensions;

    /// <summary>Advertise STARTTLS (before TLS only) and perform the TLS handshake when asked.</summary>
    public bool OfferStartTls { get; init; }

    public TlsFault TlsFault { get; init; }

    public string MailReply { get; init; } = "250 2.1.0 Ok";

    /// <summary>Replies to the first, second... MAIL of the session; later ones get <see cref="MailReply"/>.</summary>
    public IReadOnlyList<string> MailRepliesInTurn { get; init; } = [];

    /// <summary>After the final reply to this many messages, say 421 and close, as a server ending a connection does (0: never).</summary>
    public int CloseAfterMessages { get; init; }

    /// <summary>With <see cref="UpstreamDrop.AtMail"/>: how many MAIL commands are served before the drop.</summary>
    public int MailsBeforeDrop { get; init; }

    /// <summary>Replies by recipient address (without angle brackets); others get <see cref="RcptReply"/>.</summary>
    public IReadOnlyDictionary<string, string> RcptReplies { get; init; } = new Dictionary<string, string>();

    public string RcptReply { get; init; } = "250 2.1.5 Ok";

    public string DataReply { get; init; } = "354 End data with <CR><LF>.<CR><LF>";

    public string FinalReply { get; init; } = "250 2.0.0 Ok: queued as SCRIPTED";

    public string RsetReply { get; init; } = "250 2.0.0 Ok";

    /// <summary>
    /// Keep the transaction open after a refused DATA and answer a nested MAIL with 503, as Postfix does:
    /// only RSET, HELO/EHLO or the end of data clear it.
    /// </summary>
    public bool StatefulTransaction { get; init; }

    /// <summary>
    /// Pauses before the reply to a verb ("MAIL", "DATA", "." for the final dot, "GREETING"),
    /// or to one recipient ("RCPT slow@example.net").
    /// </summary>
    public IReadOnlyDictionary<string, TimeSpan> Delays { get; init; } = new Dictionary<string, TimeSpan>();

    public UpstreamDrop Drop { get; init; }

    public int DropAfterDataBytes { get; init; } = 1;

    public string ReplyTo(string verb, string argument) => verb switch
    {
        "MAIL" => MailReply,
        "RCPT" => RcptReplies.TryGetValue(AddressIn(argument), out var reply) ? reply : RcptReply,
        "DATA" => DataReply,
        "RSET" => RsetReply,
        "NOOP" => "250 2.0.0 Ok",
        "QUIT" => "221 2.0.0 Bye",
        _ => "502 5.5.2 Error: command not recognized",
    };

    public string EhloReply(string clientName, bool tls)
    {
        var lines = new List<string> { $"mx.upstream.test greets {clientName}" };
        lines.AddRange(Extensions);
        if (OfferStartTls && !tls)
        {
            lines.Add("STARTTLS");
        }

        var builder = new StringBuilder();
        for (var i = 0; i < lines.Count; i++)
        {
            builder.Append(i == lines.Count - 1 ? "250 " : "250-").Append(lines[i]);
            if (i < lines.Count - 1)
            {
                builder.Append("\r\n");
            }
        }

        return builder.ToString();
    }

    public TimeSpan DelayFor(string verb, string argument) =>
        verb == "RCPT" && Delays.TryGetValue("RCPT " + AddressIn(argument), out var own) ? own
        : Delays.TryGetValue(verb, out var delay) ? delay
        : TimeSpan.Zero;

    private static string AddressIn(string argument)
    {
        var open = argument.IndexOf('<', StringComparison.Ordinal);
        var close = argument.IndexOf('>', StringComparison.Ordinal);
        return open >= 0 && close > open ? argument[(open + 1)..close] : argument;
    }
}

/// <summary>How the scripted upstream spoils the TLS handshake after its "220 Ready to start TLS".</summary>
public enum TlsFault
{
    None,

    /// <summary>Never answer the client's hello.</summary>
    Stall,

    /// <summary>Reset the connection.</summary>
    Drop,

    /// <summary>Answer the client's hello with a fatal TLS alert (handshake_failure).</summary>
    Alert,
}

/// <summary>How a scripted upstream session ended.</summary>
internal enum UpstreamEnd
{
    /// <summary>The relay said QUIT.</summary>
    Quit,

    /// <summary>The relay closed the connection without QUIT (FIN).</summary>
    Closed,

    /// <summary>The relay reset the connection (RST: an abortive close).</summary>
    Reset,

    /// <summary>The script hung up.</summary>
    DroppedByScript,

    /// <summary>The test ended first.</summary>
    Cancelled,
}

/// <summary>What one upstream session saw: every command line, every message, how it ended.</summary>
internal sealed class UpstreamSessionRecord(int index)
{
    private readonly object _gate = new();
    private readonly List<string> _commands = [];
    private readonly List<byte[]> _messages = [];
    private readonly TaskCompletionSource<UpstreamEnd> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[] _partialData = [];
    private bool _tls;

    public int Index { get; } = index;

    /// <summary>Command lines as received, without CRLF (a bare-LF line keeps no terminator either).</summary>
    public IReadOnlyList<string> Commands
    {
        get
        {
            lock (_gate)
            {
                return [.. _commands];
            }
        }
    }

    /// <summary>Complete messages: the DATA bytes as received (dot-stuffed), without the final ".\r\n".</summary>
    public IReadOnlyList<byte[]> Messages
    {
        get
        {
            lock (_gate)
            {
                return [.. _messages];
            }
        }
    }

    /// <summary>The bytes of a DATA section that never got its final dot.</summary>
    public byte[] PartialData
    {
        get
        {
            lock (_gate)
            {
                return _partialData;
            }
        }
    }

    public bool TlsEstablished
    {
        get
        {
            lock (_gate)
            {
                return _tls;
            }
        }
    }

    public Task<UpstreamEnd> Ended => _ended.Task;

    public bool HasEnded => _ended.Task.IsCompleted;

    internal void AddCommand(string line)
    {
        lock (_gate)
        {
            _commands.Add(line);
        }
    }

    internal void AddMessage(byte[] data)
    {
        lock (_gate)
        {
            _messages.Add(data);
        }
    }

    internal void SetPartialData(byte[] data)
    {
        lock (_gate)
        {
            _partialData = data;
        }
    }

    internal void SetTls()
    {
        lock (_gate)
        {
            _tls = true;
        }
    }

    internal void End(UpstreamEnd how) => _ended.TrySetResult(how);
}
