using System.Collections.Frozen;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;
using static Interceptor.Smtp.Session.SessionState;

namespace Interceptor.Smtp.Session;

/// <summary>
/// What one command may do in one state: refused as out of sequence (with the reply for it), or run, and then
/// where the session goes when the command takes effect and when it does not (see <see cref="StepResult"/>). A command that ends the session
/// (QUIT, a protocol violation we hang up on, a 421) goes to <see cref="Closing"/> whatever the rule says.
/// </summary>
/// <param name="SyntaxFirst">The command's own syntax is judged before its sequence (today's order for "DATA x"
/// after a MAIL whose recipients were all refused: 501, not 554).</param>
public readonly record struct StateRule(SessionState OnEffect, SessionState OnNoEffect, SmtpReply? OutOfSequence = null, bool SyntaxFirst = false)
{
    public bool IsLegal => OutOfSequence is null;
}

/// <summary>
/// The one table of which command is legal in which state and where it leads (RFC 5321 4.1.4 and Postfix's smtpd
/// replies for out-of-sequence commands). Handlers never re-derive legality: the session asks here first.
/// </summary>
public static class SessionStateTable
{
    private static readonly FrozenDictionary<(SessionState, SmtpVerb), StateRule> Rules = Build();

    /// <summary>The rule for <paramref name="verb"/> in <paramref name="state"/>; only states that read commands have rules.</summary>
    public static StateRule Rule(SessionState state, SmtpVerb verb) =>
        Rules.TryGetValue((state, verb), out var rule)
            ? rule
            : throw new InvalidOperationException($"no command is read in state {state}");

    private static FrozenDictionary<(SessionState, SmtpVerb), StateRule> Build()
    {
        var rules = new Dictionary<(SessionState, SmtpVerb), StateRule>();
        foreach (var state in Enum.GetValues<SessionState>().Where(s => s.ReadsCommands()))
        {
            foreach (var verb in Enum.GetValues<SmtpVerb>())
            {
                rules[(state, verb)] = RuleFor(state, verb);
            }
        }

        return rules.ToFrozenDictionary();
    }

    private static StateRule RuleFor(SessionState state, SmtpVerb verb) => (verb, state) switch
    {
        // EHLO/HELO in a transaction resets it (RFC 5321 4.1.4); a refused one (no argument) changes nothing.
        (SmtpVerb.Ehlo or SmtpVerb.Helo, _) => new(Greeted, state),

        (SmtpVerb.Mail, Connected) => Refuse(state, SessionReplies.BadSequenceNoHelo),
        (SmtpVerb.Mail, Greeted) => new(MailGiven, Greeted),
        (SmtpVerb.Mail, _) => Refuse(state, SessionReplies.BadSequenceNestedMail),

        (SmtpVerb.Rcpt, Connected or Greeted) => Refuse(state, SessionReplies.BadSequenceNoMail),
        (SmtpVerb.Rcpt, _) => new(RcptGiven, state),

        // DATA passes through InData and ends the transaction, delivered or not; only a syntax error leaves it open.
        (SmtpVerb.Data, Connected or Greeted) => Refuse(state, SessionReplies.BadSequenceNoMail),
        (SmtpVerb.Data, MailGiven) => Refuse(state, SessionReplies.NoValidRecipients) with { SyntaxFirst = true },
        (SmtpVerb.Data, _) => new(Greeted, RcptGiven),

        // RSET reaches the upstream even without a transaction; it never greets.
        (SmtpVerb.Rset, Connected) => new(Connected, Connected),
        (SmtpVerb.Rset, _) => new(Greeted, Greeted),

        (SmtpVerb.Quit, _) => new(Closing, Closing),

        // STARTTLS (only where it is offered; elsewhere the session answers 502 before asking here) follows EHLO, outside a
        // transaction, and starts the conversation over: the client must greet again under TLS (RFC 3207 4.2).
        (SmtpVerb.StartTls, Connected) => Refuse(state, SessionReplies.BadSequenceNoHelo),
        (SmtpVerb.StartTls, Greeted) => new(Connected, Greeted),
        (SmtpVerb.StartTls, _) => Refuse(state, SessionReplies.BadSequenceInTransaction),

        // NOOP, VRFY, HELP, the extensions we do not offer and unknown commands are answered where they stand.
        _ => new(state, state),
    };

    private static StateRule Refuse(SessionState state, SmtpReply reply) => new(state, state, reply);
}
