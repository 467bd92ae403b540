namespace Interceptor.Tests.Smtp.Session;

/// <summary>Issue 13.1 through a whole session: the state table's answers as a client sees them, replies unchanged.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class StateMachineSessionTests
{
    [Test]
    public async Task Data_with_an_argument_after_mail_is_a_syntax_error_before_it_is_out_of_sequence()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint);
        await session.GreetAsync();
        await session.CommandAsync("MAIL FROM:<alice@customer.test>");

        var withArgument = await session.CommandAsync("DATA now");
        var plain = await session.CommandAsync("DATA");
        var nested = await session.CommandAsync("MAIL FROM:<alice@customer.test>");

        Assert.That(withArgument.Text, Is.EqualTo("501 5.5.4 Syntax: DATA (no argument)"));
        Assert.That(plain.Text, Is.EqualTo("554 5.5.1 Error: no valid recipients"));
        Assert.That(nested.Text, Is.EqualTo("503 5.5.1 Error: nested MAIL command"), "the transaction is still open");
    }

    [Test]
    public async Task Rset_before_the_greeting_is_answered_but_does_not_greet()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint);
        Assert.That((await session.ReadReplyAsync()).Code, Is.EqualTo(220));

        var reset = await session.CommandAsync("RSET");
        var mail = await session.CommandAsync("MAIL FROM:<alice@customer.test>");

        Assert.That(reset.Code, Is.EqualTo(250));
        Assert.That(mail.Text, Is.EqualTo("503 5.5.1 Error: send HELO/EHLO first"));
    }

    [Test]
    public async Task A_refused_recipient_keeps_the_transaction_and_data_still_needs_an_accepted_one()
    {
        var script = new UpstreamScript { RcptReplies = new Dictionary<string, string> { ["nobody@example.net"] = "550 5.1.1 no such user" } };
        await using var upstream = new ScriptedUpstream(script);
        await using var session = MemorySession.Start(upstream.EndPoint);
        await session.GreetAsync();
        await session.CommandAsync("MAIL FROM:<alice@customer.test>");

        var refused = await session.CommandAsync("RCPT TO:<nobody@example.net>");
        var data = await session.CommandAsync("DATA");
        var accepted = await session.CommandAsync("RCPT TO:<bob@example.net>");
        var go = await session.CommandAsync("DATA");

        Assert.That(refused.Code, Is.EqualTo(550));
        Assert.That(data.Text, Is.EqualTo("554 5.5.1 Error: no valid recipients"));
        Assert.That(accepted.Code, Is.EqualTo(250));
        Assert.That(go.Code, Is.EqualTo(354));
    }

    [Test]
    public async Task After_a_delivered_message_the_session_is_greeted_again_and_helo_resets_a_transaction()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint);
        await session.StartDataAsync();
        await session.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        Assert.That((await session.ReadReplyAsync()).Code, Is.EqualTo(250));

        var second = await session.CommandAsync("MAIL FROM:<alice@customer.test>");
        var helo = await session.CommandAsync("HELO again.customer.test");
        var rcpt = await session.CommandAsync("RCPT TO:<bob@example.net>");

        Assert.That(second.Code, Is.EqualTo(250), "not nested: DATA ended the first transaction");
        Assert.That(helo.Text, Is.EqualTo($"250 {RelayHarness.HeloName}"));
        Assert.That(rcpt.Text, Is.EqualTo("503 5.5.1 Error: need MAIL command"), "HELO ended the second transaction");
        await Wait.UntilAsync(() => session.Recorder.Events.Count == 2, "both transactions recorded");
        Assert.That(session.Recorder.Events[1].Reply, Is.EqualTo("aborted: the client said HELO again"));
    }
}
