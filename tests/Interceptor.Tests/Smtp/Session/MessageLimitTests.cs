using System.Text;
using Interceptor.Core.Events;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class MessageLimitTests
{
    private const long Limit = 10_000;

    [Test]
    public async Task A_declared_size_above_the_limit_is_refused_with_552_without_asking_the_upstream()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.WithLimits(messageSizeBytes: Limit));
        await relay.Client.GreetAsync();

        var refused = await relay.Client.CommandAsync($"MAIL FROM:<alice@customer.test> SIZE={Limit + 1}");
        var garbled = await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test> SIZE=lots");
        var accepted = await relay.Client.CommandAsync($"MAIL FROM:<alice@customer.test> SIZE={Limit}");

        Assert.That(refused.Text, Does.StartWith("552 5.3.4 "));
        Assert.That(refused.Text, Does.Contain(RelayHarness.User));
        Assert.That(garbled.Text, Does.StartWith("501 5.5.4 "));
        Assert.That(accepted.Code, Is.EqualTo(250));
        Assert.That((await upstream.SessionAsync(0)).Commands.Where(c => c.StartsWith("MAIL", StringComparison.Ordinal)),
            Is.EqualTo(new[] { $"MAIL FROM:<alice@customer.test> SIZE={Limit}" }), "only the acceptable MAIL went upstream");
    }

    [Test]
    public async Task A_body_above_the_limit_gets_552_after_the_final_dot_and_the_upstream_never_sees_a_complete_message()
    {
        await using var upstream = new ScriptedUpstream(new UpstreamScript(), new UpstreamScript());
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.WithLimits(messageSizeBytes: Limit));
        await relay.Client.GreetAsync();
        var body = "Subject: big\r\n\r\n" + string.Concat(Enumerable.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv\r\n", 500));

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], body);

        Assert.That(final.Text, Does.StartWith("552 5.3.4 "));
        var first = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(first.Ended, "the relay to drop the upstream"), Is.EqualTo(UpstreamEnd.Reset), "aborted, not finished");
        Assert.That(first.Messages, Is.Empty, "no final dot reached the upstream");
        Assert.That(first.Commands, Does.Not.Contain("QUIT"));
        Assert.That(first.PartialData, Has.Length.LessThanOrEqualTo(Limit + 200));
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().Reply, Does.StartWith("552"));
        Assert.That(relay.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Refused));

        // The client's session is intact; the next message goes through a new upstream session.
        var next = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: small\r\n\r\nok\r\n");
        Assert.That(next.Code, Is.EqualTo(250), next.Text);
    }

    [Test]
    public async Task A_body_of_exactly_the_limit_is_accepted()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.WithLimits(messageSizeBytes: Limit));
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], BodyOf(Limit));

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().SizeBytes, Is.EqualTo(Limit));
    }

    [Test]
    
    public async Task A_body_of_exactly_the_limit_is_accepted_when_the_final_dot_arrives_in_two_segments()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.WithLimits(messageSizeBytes: Limit));
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await client.CommandAsync("RCPT TO:<bob@example.net>");
        await client.CommandAsync("DATA");

        // TCP may split the end marker anywhere. The relay holds the dot back and gives no sign of having read
        // it, so a short pause is the only way to make the split happen.
        await client.SendAsync(BodyOf(Limit) + ".");
        await Task.Delay(300);
        await client.SendAsync("\r\n");
        var final = await client.ReadReplyAsync();

        Assert.That(final.Code, Is.EqualTo(250), $"the end marker was counted as message bytes: {final.Text}");
    }

    [Test]
    public async Task The_101st_recipient_gets_452_453_when_the_limit_is_100()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, RelayHarness.WithLimits(recipientsPerMessage: 100));
        var client = relay.Client;
        await client.GreetAsync();
        await client.CommandAsync("MAIL FROM:<alice@customer.test>");

        var replies = new List<SmtpTestReply>();
        for (var i = 1; i <= 101; i++)
        {
            replies.Add(await client.CommandAsync($"RCPT TO:<r{i}@example.net>"));
        }

        Assert.That(replies.Take(100).Select(r => r.Code), Has.All.EqualTo(250));
        Assert.That(replies[100].Text, Does.StartWith("452 4.5.3 "));
        var session = await upstream.SessionAsync(0);
        Assert.That(session.Commands.Count(c => c.StartsWith("RCPT", StringComparison.Ordinal)), Is.EqualTo(100));
        Assert.That(session.Commands, Does.Not.Contain("RCPT TO:<r101@example.net>"));

        Assert.That((await client.CommandAsync("DATA")).Code, Is.EqualTo(354));
        await client.SendAsync("Subject: many\r\n\r\nbody\r\n.\r\n");
        Assert.That((await client.ReadReplyAsync()).Code, Is.EqualTo(250));
        await Wait.UntilAsync(() => relay.Recorder.Events.Count >= 1, "the transaction recorded (right after the client's final reply)");
        Assert.That(relay.Recorder.Events.Single().RecipientCount, Is.EqualTo(100));
    }

    /// <summary>A body of exactly <paramref name="size"/> bytes, in CRLF lines.</summary>
    private static string BodyOf(long size)
    {
        var body = new StringBuilder("Subject: sized\r\n\r\n");
        while (body.Length + 80 < size)
        {
            body.Append('x', 78).Append("\r\n");
        }

        body.Append('y', (int)(size - body.Length - 2)).Append("\r\n");
        Assert.That(body.Length, Is.EqualTo(size));
        return body.ToString();
    }
}
