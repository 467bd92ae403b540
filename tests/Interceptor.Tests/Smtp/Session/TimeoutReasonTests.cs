using Interceptor.Core.Events;
using Interceptor.Smtp.Session;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// Issue 13.5: one timeout authority per connection, each reason with its own reply and log line, shown over an
/// in-memory client with limits of a fraction of a second.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class TimeoutReasonTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(300);

    [Test]
    public async Task Idle_between_commands_is_told_no_input()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint, MemorySession.Relaxed with { Idle = Short });
        await session.GreetAsync();

        var reply = await session.ReadReplyAsync();

        Assert.That(reply.Text, Does.StartWith("421 4.4.2 Error: timeout, no input for "));
        await Wait.UntilAsync(() => session.Log.Lines.Any(l => l.StartsWith("closing idle session uid=1001 user=alice after", StringComparison.Ordinal)), "the idle log line");
    }

    [Test]
    public async Task A_command_line_that_does_not_end_is_told_so_not_that_it_was_idle()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint, MemorySession.Relaxed with { CommandLine = Short });
        await session.GreetAsync();

        await session.SendAsync("NO");
        var reply = await session.ReadReplyAsync();

        Assert.That(reply.Text, Does.StartWith("421 4.4.2 Error: command line not completed within "));
        await Wait.UntilAsync(() => session.Log.Lines.Any(l => l.Contains(": a command line trickled for over", StringComparison.Ordinal)), "the trickle log line");
        Assert.That(session.Log.Lines, Has.None.Contains("without input"));
    }

    [Test]
    public async Task Data_below_the_minimum_rate_after_the_grace_gets_421_and_nothing_is_delivered()
    {
        await using var upstream = new ScriptedUpstream();
        var limits = MemorySession.Relaxed with { DataRateGrace = TimeSpan.FromMilliseconds(200), MinDataBytesPerSecond = 1_000_000 };
        await using var session = MemorySession.Start(upstream.EndPoint, limits);
        await session.StartDataAsync();

        await session.SendAsync("Subject: slow\r\n");
        await Task.Delay(400);
        await session.SendAsync("x");
        var reply = await session.ReadReplyAsync();

        Assert.That(reply.Text, Does.StartWith("421 4.4.2 Error: data arrives slower than 1000000 bytes/s"));
        await Wait.UntilAsync(() => session.Recorder.Events.Count == 1, "the recorded transaction");
        Assert.Multiple(() =>
        {
            Assert.That(session.Log.Lines, Has.Some.Contains(": DATA slower than 1000000 bytes/s"));
            Assert.That(session.Recorder.Events.Single().Outcome, Is.EqualTo(TransactionOutcome.Refused));
        });
        var relayed = await upstream.SessionAsync(0);
        Assert.That(await Wait.ForAsync(relayed.Ended, "the upstream to be dropped"), Is.EqualTo(UpstreamEnd.Reset));
        Assert.That(relayed.Messages, Is.Empty);
    }

    /// <summary>The bug: such a client was told "no input for 300 s" although it had just sent plenty.</summary>
    [Test]
    public async Task A_client_that_does_not_read_its_replies_is_told_so_not_that_it_was_idle()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint, MemorySession.Relaxed with { Idle = Short }, replyBuffer: 256);
        await session.GreetAsync();

        // Far more replies than the reply channel holds, and none read: the session's write blocks.
        await session.SendAsync(string.Concat(Enumerable.Repeat("NOOP\r\n", 100)));
        await Wait.UntilAsync(() => session.Log.Lines.Any(l => l.Contains("its replies were not read", StringComparison.Ordinal)), "the log line", TimeSpan.FromSeconds(5));
        var replies = await session.ReadToEndAsync();

        Assert.That(replies[^1].Text, Does.StartWith("421 4.4.2 Error: timeout, replies not read for "));
        Assert.That(replies.Select(r => r.Text), Has.None.Contains("no input"));
        Assert.That(session.Log.Lines, Has.None.Contains("without input"));
    }

    [Test]
    public async Task A_session_longer_than_its_limit_is_told_so_even_while_busy()
    {
        await using var upstream = new ScriptedUpstream();
        await using var session = MemorySession.Start(upstream.EndPoint, MemorySession.Relaxed with { Session = TimeSpan.FromMilliseconds(700) });
        await session.GreetAsync();

        SmtpTestReply reply;
        do
        {
            reply = await session.CommandAsync("NOOP");
        }
        while (reply.Code == 250);

        Assert.That(reply.Text, Does.StartWith("421 4.4.2 Error: session longer than "));
        await Wait.UntilAsync(() => session.Log.Lines.Any(l => l.Contains(": longer than", StringComparison.Ordinal)), "the log line");
    }

    [Test]
    public async Task A_silent_upstream_gives_the_client_451_naming_the_wait_and_the_session_goes_on()
    {
        var script = new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["RCPT slow@example.net"] = TimeSpan.FromSeconds(3) } };
        await using var upstream = new ScriptedUpstream(script);
        await using var session = MemorySession.Start(upstream.EndPoint, options: RelayHarness.ShortTimeouts);
        await session.GreetAsync();
        await session.CommandAsync("MAIL FROM:<alice@customer.test>");

        var reply = await session.CommandAsync("RCPT TO:<slow@example.net>");
        var noop = await session.CommandAsync("NOOP");

        Assert.That(reply.Text, Does.StartWith($"451 4.4.2 upstream {upstream.EndPoint}: no reply within {RelayHarness.ShortTimeouts.Relay.ReplyTimeout.TotalSeconds} s; try again later"));
        Assert.That(noop.Code, Is.EqualTo(250), "the upstream's silence does not end the client's session");
        Assert.That(session.Log.Lines, Has.Some.StartWith($"upstream {upstream.EndPoint} failed for uid=1001 user=alice: no reply within"));
    }

    [TestCase(TimeoutReason.Idle, 5)]
    [TestCase(TimeoutReason.RepliesNotRead, 5)]
    [TestCase(TimeoutReason.CommandLine, 7)]
    [TestCase(TimeoutReason.SessionTooLong, 11)]
    [TestCase(TimeoutReason.SlowData, 13)]
    public void Each_reason_names_the_limit_it_exceeded(TimeoutReason reason, int seconds)
    {
        var limits = new TimeoutLimits(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(11), TimeSpan.FromSeconds(13), 100);

        Assert.That(limits.For(reason), Is.EqualTo(TimeSpan.FromSeconds(seconds)));
    }

    [Test]
    public void The_limits_come_from_the_session_options()
    {
        var limits = TimeoutLimits.From(new Interceptor.Core.Options.SmtpOptions
        {
            IdleTimeout = TimeSpan.FromSeconds(42),
            CommandLineTimeout = TimeSpan.FromSeconds(9),
            SessionTimeout = TimeSpan.FromSeconds(600),
            DataRateGrace = TimeSpan.FromSeconds(31),
            MinDataRate = Interceptor.Core.Options.DataRate.FromBytesPerSecond(77),
        });

        Assert.That(limits, Is.EqualTo(new TimeoutLimits(TimeSpan.FromSeconds(42), TimeSpan.FromSeconds(9), TimeSpan.FromSeconds(600), TimeSpan.FromSeconds(31), 77)));
    }
}
