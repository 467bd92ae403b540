using Interceptor.Core.Replies;

namespace Interceptor.Smtp.Protocol;

/// <summary>The replies the daemon writes itself (as opposed to the upstream's, which pass through verbatim).</summary>
public static class SessionReplies
{
    public static readonly SmtpReply Ok = new(250, "2.0.0", "Ok");
    public static readonly SmtpReply Bye = new(221, "2.0.0", "Bye");
    public static readonly SmtpReply StartData = new(354, null, "End data with <CR><LF>.<CR><LF>");
    public static readonly SmtpReply BadSequenceNoHelo = new(503, "5.5.1", "Error: send HELO/EHLO first");
    public static readonly SmtpReply BadSequenceNoMail = new(503, "5.5.1", "Error: need MAIL command");
    public static readonly SmtpReply BadSequenceNestedMail = new(503, "5.5.1", "Error: nested MAIL command");
    public static readonly SmtpReply BadSequenceNoRcpt = new(503, "5.5.1", "Error: need RCPT command");
    public static readonly SmtpReply NoValidRecipients = new(554, "5.5.1", "Error: no valid recipients");
    public static readonly SmtpReply CannotVerify = new(252, "2.0.0", "Cannot VRFY user; try RCPT to attempt delivery");
    public static readonly SmtpReply Help = new(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
    public static readonly SmtpReply StartTlsNotOffered = new(502, "5.5.1", "STARTTLS is not offered on this local hop; the relay uses TLS upstream when it can");
    public static readonly SmtpReply StartTlsReady = new(220, "2.0.0", "Ready to start TLS");
    public static readonly SmtpReply TlsAlreadyActive = new(503, "5.5.1", "Error: TLS already active");
    public static readonly SmtpReply StartTlsSyntax = new(501, "5.5.4", "Syntax: STARTTLS");
    public static readonly SmtpReply BadSequenceInTransaction = new(503, "5.5.1", "Error: MAIL transaction in progress");
    public static readonly SmtpReply ChunkingNotOffered = new(502, "5.5.1", "BDAT (CHUNKING) is not offered; use DATA");
    public static readonly SmtpReply AuthNotOffered = new(502, "5.5.1", "AUTH is not offered on this local hop");
    public static readonly SmtpReply BareLineFeed = new(500, "5.5.2", "Error: bare <LF> received; SMTP lines must end with <CR><LF>");
    public static readonly SmtpReply ForbiddenByte = new(500, "5.5.2", "Error: bare <CR> or NUL byte in command");
    public static readonly SmtpReply HeloNeedsArgument = new(501, "5.5.4", "Syntax: EHLO hostname");

    /// <summary>
    /// A refusal given in place of the greeting. RFC 5321 (4.2, 4.3.2) allows only 421 (try later) and 554 there, so a
    /// relay pool's 451 4.4.1 or 454 4.7.0 keeps its enhanced code and text but takes the greeting's code for its class.
    /// </summary>
    public static SmtpReply AsGreeting(SmtpReply refusal) =>
        refusal.Code is 421 or 554 ? refusal : new(refusal.IsTransientFailure ? 421 : 554, refusal.EnhancedCode, refusal.Lines);

    public static SmtpReply LineTooLong(int limit) => new(500, "5.5.2", $"Error: command line longer than {limit} bytes");

    public static SmtpReply UnknownCommand(string verb) =>
        new(500, "5.5.2", $"Error: command not recognized: {Printable(verb)}");

    public static SmtpReply IdleTimeout(TimeSpan idle) =>
        new(421, "4.4.2", $"Error: timeout, no input for {idle.TotalSeconds:0} s; closing connection");

    public static SmtpReply SessionTooLong(TimeSpan limit) =>
        new(421, "4.4.2", $"Error: session longer than {limit.TotalSeconds:0} s; closing connection");

    public static SmtpReply CommandLineTimeout(TimeSpan limit) =>
        new(421, "4.4.2", $"Error: command line not completed within {limit.TotalSeconds:0} s; closing connection");

    /// <summary>Logged for a stalled handshake; never written (the wire is half TLS by then).</summary>
    public static SmtpReply TlsHandshakeTimeout(TimeSpan limit) =>
        new(421, "4.4.2", $"Error: TLS handshake not completed within {limit.TotalSeconds:0} s; closing connection");

    public static SmtpReply DataTooSlow(long bytesPerSecond) =>
        new(421, "4.4.2", $"Error: data arrives slower than {bytesPerSecond} bytes/s; closing connection");

    /// <summary>Distinct from <see cref="IdleTimeout"/>: the client sent its commands but stopped taking our replies.</summary>
    public static SmtpReply RepliesNotRead(TimeSpan limit) =>
        new(421, "4.4.2", $"Error: timeout, replies not read for {limit.TotalSeconds:0} s; closing connection");

    public static readonly SmtpReply ShuttingDown = new(421, "4.3.2", "Service shutting down; try again later");

    public static SmtpReply ImproperPipelining(string after) => new(554, "5.5.0", $"Error: improper command pipelining after {after}");

    public static readonly SmtpReply PregreetData = new(554, "5.5.0", "Error: SMTP protocol synchronization: data sent before the greeting");

    public static readonly SmtpReply DataTakesNoArgument = new(501, "5.5.4", "Syntax: DATA (no argument)");

    public static SmtpReply TooManyErrors(int errors) => new(421, "4.7.0", $"Error: too many errors ({errors}); closing connection");

    public static SmtpReply TooManyRecipients(int limit) =>
        new(452, "4.5.3", $"Error: too many recipients; at most {limit} per message, send the rest in another message");

    public static SmtpReply MessageTooBig(long limit) =>
        new(552, "5.3.4", $"Error: message exceeds the size limit of {limit} bytes");

    public static SmtpReply DataHasForbiddenBytes(string what) =>
        new(550, "5.6.0", $"Error: message refused, it contains {what}; nothing was relayed");

    public static readonly SmtpReply DataFoldsIntoTraceHeader =
        new(550, "5.6.0", "Error: message refused, its first line starts with a space or tab (a header continuation with no header, RFC 5322 2.2.3); nothing was relayed");

    public static SmtpReply DataLineTooLong(int limit) =>
        new(550, "5.6.0", $"Error: message refused, a line is longer than {limit} bytes; nothing was relayed");

    /// <summary>Keeps hostile bytes out of our replies and logs.</summary>
    public static string Printable(string text)
    {
        var clean = new string(text.Where(c => c >= ' ' && c < 0x7f).Take(64).ToArray());
        return clean.Length == 0 ? "(empty)" : clean;
    }
}
