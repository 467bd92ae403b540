using Interceptor.Core.Replies;
using Interceptor.Smtp.Protocol;
using Interceptor.Smtp.Session;
using static Interceptor.Smtp.Session.SessionState;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Issue 13.1: every command in every state, against the rules written out by hand (RFC 5321 4.1.4, Postfix's replies).</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class SessionStateTableTests
{
    private static readonly SessionState[] CommandStates = [Connected, Greeted, MailGiven, RcptGiven];

    /// <summary>The commands answered locally wherever they come, leaving the state as it was.</summary>
    private static readonly SmtpVerb[] Local = [SmtpVerb.Noop, SmtpVerb.Vrfy, SmtpVerb.Help, SmtpVerb.Bdat, SmtpVerb.Auth, SmtpVerb.Unknown];

    /// <summary>(state, verb) → (out-of-sequence reply or null, state when it took effect, state when it did not).</summary>
    private static IEnumerable<TestCaseData> EveryCommandInEveryState()
    {
        foreach (var state in CommandStates)
        {
            foreach (var verb in Enum.GetValues<SmtpVerb>())
            {
                var (refusal, onEffect, onNoEffect) = Expected(state, verb);
                yield return new TestCaseData(state, verb, refusal?.ToString(), onEffect, onNoEffect).SetName($"{verb} in {state}");
            }
        }
    }

    private static (SmtpReply? Refusal, SessionState OnEffect, SessionState OnNoEffect) Expected(SessionState state, SmtpVerb verb)
    {
        if (Local.Contains(verb))
        {
            return (null, state, state);
        }

        return verb switch
        {
            SmtpVerb.Ehlo or SmtpVerb.Helo => (null, Greeted, state),
            SmtpVerb.Quit => (null, Closing, Closing),
            SmtpVerb.Rset => state == Connected ? (null, Connected, Connected) : (null, Greeted, Greeted),
            SmtpVerb.Mail => state switch
            {
                Connected => (new SmtpReply(503, "5.5.1", "Error: send HELO/EHLO first"), state, state),
                Greeted => (null, MailGiven, Greeted),
                _ => (new SmtpReply(503, "5.5.1", "Error: nested MAIL command"), state, state),
            },
            SmtpVerb.Rcpt => state is Connected or Greeted
                ? (new SmtpReply(503, "5.5.1", "Error: need MAIL command"), state, state)
                : (null, RcptGiven, state),
            // Issue 18, where STARTTLS is offered (ClientTls.Mode Mint; when Off the session answers 502 before the table):
            // after EHLO only, outside a transaction, and the session starts over.
            SmtpVerb.StartTls => state switch
            {
                Connected => (new SmtpReply(503, "5.5.1", "Error: send HELO/EHLO first"), state, state),
                Greeted => (null, Connected, Greeted),
                _ => (new SmtpReply(503, "5.5.1", "Error: MAIL transaction in progress"), state, state),
            },
            SmtpVerb.Data => state switch
            {
                Connected or Greeted => (new SmtpReply(503, "5.5.1", "Error: need MAIL command"), state, state),
                MailGiven => (new SmtpReply(554, "5.5.1", "Error: no valid recipients"), state, state),
                _ => (null, Greeted, RcptGiven),
            },
            _ => throw new ArgumentOutOfRangeException(nameof(verb), verb, null),
        };
    }

    [TestCaseSource(nameof(EveryCommandInEveryState))]
    public void The_table_says_what_each_command_may_do_and_where_it_leads(SessionState state, SmtpVerb verb, string? refusal, SessionState onEffect, SessionState onNoEffect)
    {
        var rule = SessionStateTable.Rule(state, verb);

        Assert.Multiple(() =>
        {
            Assert.That(rule.IsLegal, Is.EqualTo(refusal is null));
            Assert.That(rule.OutOfSequence?.ToString(), Is.EqualTo(refusal));
            Assert.That(rule.OnEffect, Is.EqualTo(onEffect));
            Assert.That(rule.OnNoEffect, Is.EqualTo(onNoEffect));
            Assert.That(rule.SyntaxFirst, Is.EqualTo(state == MailGiven && verb == SmtpVerb.Data), "only DATA after MAIL judges its syntax first (501 before 554)");
        });
    }

    [TestCase(InData)]
    [TestCase(Closing)]
    public void No_command_is_read_while_the_message_streams_or_after_the_end(SessionState state)
    {
        Assert.That(state.ReadsCommands(), Is.False);
        Assert.Throws<InvalidOperationException>(() => SessionStateTable.Rule(state, SmtpVerb.Noop));
    }

    [Test]
    public void The_transaction_exists_exactly_from_mail_to_the_end_of_data()
    {
        var holding = Enum.GetValues<SessionState>().Where(s => s.HoldsTransaction());

        Assert.That(holding, Is.EquivalentTo(new[] { MailGiven, RcptGiven, InData }));
    }

    [TestCase("EHLO", SmtpVerb.Ehlo)]
    [TestCase("STARTTLS", SmtpVerb.StartTls)]
    [TestCase("XCLIENT", SmtpVerb.Unknown)]
    [TestCase("", SmtpVerb.Unknown)]
    public void Verbs_are_recognised_by_their_upper_cased_word(string word, SmtpVerb verb) =>
        Assert.That(SmtpVerbs.Parse(word), Is.EqualTo(verb));
}
