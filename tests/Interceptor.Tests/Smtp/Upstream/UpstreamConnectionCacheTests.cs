using Interceptor.Core.Options;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.Smtp.Session;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>
/// Upstream sessions handed from one client to the next (Relay.ReuseConnections), through real sessions over
/// loopback against the scripted upstream: what the upstream sees is what an MX would see.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class UpstreamConnectionCacheTests
{
    private const string Body = "Subject: reuse\r\n\r\nhello\r\n";

    private static InterceptorOptions Reuse(int idleSeconds = 30, int maxMessages = 100, bool enabled = true) => RelayHarness.Options with
    {
        Relay = RelayHarness.Options.Relay with
        {
            ReuseConnections = enabled,
            ReuseIdleTime = TimeSpan.FromSeconds(idleSeconds),
            ReuseMaxMessages = maxMessages,
        },
    };

    private static UpstreamConnectionCache CacheFor(InterceptorOptions options) => new(UpstreamSettings.From(options.Relay));

    /// <summary>One client session: greeting, EHLO, one message, QUIT; returns the final reply.</summary>
    private static async Task<SmtpTestReply> SendOneAsync(ScriptedUpstream upstream, InterceptorOptions options, UpstreamConnectionCache cache, string from = "alice@customer.test")
    {
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, options, cache);
        await relay.Client.GreetAsync();
        var final = await relay.Client.SendMessageAsync(from, ["bob@example.net"], Body);
        await relay.Client.CommandAsync("QUIT");
        await Wait.ForAsync(relay.Session, "the session to end");
        return final;
    }

    [Test]
    public async Task The_next_client_to_the_same_destination_gets_the_open_session_without_a_new_greeting_or_ehlo()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream(new UpstreamScript { StatefulTransaction = true });

        var first = await SendOneAsync(upstream, options, cache, "first@customer.test");
        var second = await SendOneAsync(upstream, options, cache, "second@customer.test");

        Assert.That(first.Code, Is.EqualTo(250), first.Text);
        Assert.That(second.Code, Is.EqualTo(250), second.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(1), "one upstream connection for both clients");
        var session = upstream.Sessions[0];
        Assert.That(session.Commands.Count(c => c.StartsWith("EHLO", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That(session.Commands.Where(c => c.StartsWith("MAIL", StringComparison.Ordinal)), Is.EqualTo(new[] { "MAIL FROM:<first@customer.test>", "MAIL FROM:<second@customer.test>" }));
        Assert.That(session.Commands, Does.Not.Contain("QUIT").And.Not.Contain("RSET"), "a finished transaction needs no reset");
        Assert.That(session.Messages, Has.Count.EqualTo(2));
        Assert.That(cache.Reused, Is.EqualTo(1));
        Assert.That(cache.IdleCount, Is.EqualTo(1), "kept again for a third client");
    }

    [Test]
    public async Task With_reuse_off_every_client_gets_its_own_session_ended_with_quit()
    {
        var options = Reuse(enabled: false);
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream();

        await SendOneAsync(upstream, options, cache);
        await SendOneAsync(upstream, options, cache);

        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        foreach (var session in upstream.Sessions)
        {
            Assert.That(await Wait.ForAsync(session.Ended, "the upstream session to end"), Is.EqualTo(UpstreamEnd.Quit));
        }

        Assert.That(cache.IdleCount, Is.Zero);
    }

    [Test]
    public async Task An_unused_session_is_ended_with_quit_after_the_idle_time()
    {
        var options = Reuse(idleSeconds: 1);
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream();

        await SendOneAsync(upstream, options, cache);
        Assert.That(cache.IdleCount, Is.EqualTo(1));

        Assert.That(await Wait.ForAsync(upstream.Sessions[0].Ended, "the idle session to be closed", TimeSpan.FromSeconds(5)), Is.EqualTo(UpstreamEnd.Quit));
        Assert.That(cache.IdleCount, Is.Zero);
        await SendOneAsync(upstream, options, cache);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2), "the next client opened a new connection");
    }

    [Test]
    public async Task A_client_that_leaves_mid_transaction_gets_the_upstream_reset_before_the_next_client()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream(new UpstreamScript { StatefulTransaction = true });
        await using (var quitter = await RelayHarness.StartAsync(upstream.EndPoint, options, cache))
        {
            await quitter.Client.GreetAsync();
            Assert.That((await quitter.Client.CommandAsync("MAIL FROM:<quitter@customer.test>")).Code, Is.EqualTo(250));
            Assert.That((await quitter.Client.CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));
            await quitter.Client.CommandAsync("QUIT");
            await Wait.ForAsync(quitter.Session, "the session to end");
        }

        var next = await SendOneAsync(upstream, options, cache);

        Assert.That(next.Code, Is.EqualTo(250), next.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(1));
        var commands = upstream.Sessions[0].Commands;
        Assert.That(commands.Skip(3).First(), Is.EqualTo("RSET"), "reset right after the abandoned MAIL and RCPT");
        Assert.That(upstream.Sessions[0].Messages, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_session_the_upstream_closed_while_idle_is_not_handed_on()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream(new UpstreamScript { CloseAfterMessages = 1 });

        await SendOneAsync(upstream, options, cache);
        await Wait.ForAsync(upstream.Sessions[0].Ended, "the upstream to close the first connection");
        var second = await SendOneAsync(upstream, options, cache);

        Assert.That(second.Code, Is.EqualTo(250), second.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        Assert.That(cache.Reused, Is.Zero, "the closed session was seen before use (its 421 or end of stream)");
    }

    [Test]
    public async Task A_cached_session_lost_at_its_first_mail_is_replaced_without_the_client_noticing()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Drop = UpstreamDrop.AtMail, MailsBeforeDrop = 1 }, new UpstreamScript());

        await SendOneAsync(upstream, options, cache, "first@customer.test");
        var second = await SendOneAsync(upstream, options, cache, "second@customer.test");

        Assert.That(second.Code, Is.EqualTo(250), second.Text);
        Assert.That(cache.Reused, Is.EqualTo(1));
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        Assert.That(upstream.Sessions[1].Commands, Does.Contain("MAIL FROM:<second@customer.test>"));
        Assert.That(upstream.Sessions[1].Messages, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_421_at_the_first_mail_of_a_cached_session_is_retried_on_a_new_one()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        var tooMany = new UpstreamScript { MailRepliesInTurn = ["250 2.1.0 Ok", "421 4.7.0 too many messages on this connection"] };
        await using var upstream = new ScriptedUpstream(tooMany, new UpstreamScript());

        await SendOneAsync(upstream, options, cache);
        var second = await SendOneAsync(upstream, options, cache);

        Assert.That(second.Code, Is.EqualTo(250), second.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        Assert.That(upstream.Sessions[1].Messages, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_session_at_its_message_limit_is_ended_with_quit_not_kept()
    {
        var options = Reuse(maxMessages: 1);
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream();

        await SendOneAsync(upstream, options, cache);
        await SendOneAsync(upstream, options, cache);

        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        Assert.That(await Wait.ForAsync(upstream.Sessions[0].Ended, "the first session to end"), Is.EqualTo(UpstreamEnd.Quit));
    }

    [Test]
    public async Task A_session_cut_off_while_waiting_for_a_reply_is_never_handed_on()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        var slow = new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["MAIL"] = TimeSpan.FromSeconds(1.5) } };
        await using var upstream = new ScriptedUpstream(slow, new UpstreamScript());
        await using (var cut = await RelayHarness.StartAsync(upstream.EndPoint, options, cache))
        {
            await cut.Client.GreetAsync();
            await cut.Client.SendAsync("MAIL FROM:<cut@customer.test>\r\n");
            await Wait.UntilAsync(() => upstream.Sessions.Count == 1 && upstream.Sessions[0].Commands.Contains("MAIL FROM:<cut@customer.test>"), "MAIL to reach the upstream");

            // Disposing the harness shuts the session down while MAIL's reply is outstanding.
        }

        Assert.That(cache.IdleCount, Is.Zero, "its late reply would answer the next client's command");
        var next = await SendOneAsync(upstream, options, cache);
        Assert.That(next.Code, Is.EqualTo(250), next.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task Idle_sessions_are_bounded_in_total_across_destinations()
    {
        var options = Reuse();
        var settings = UpstreamSettings.From(options.Relay);
        await using var cache = new UpstreamConnectionCache(settings with { Reuse = settings.Reuse with { MaxIdleTotal = 1 } });
        await using var first = new ScriptedUpstream();
        await using var second = new ScriptedUpstream();

        await SendOneAsync(first, options, cache);
        await SendOneAsync(second, options, cache);

        Assert.That(cache.IdleCount, Is.EqualTo(1));
        Assert.That(first.Sessions[0].HasEnded, Is.False, "the first destination's session is kept");
        Assert.That(await Wait.ForAsync(second.Sessions[0].Ended, "the second destination's session to be closed"), Is.EqualTo(UpstreamEnd.Quit));
    }

    [Test]
    public async Task Disposing_the_cache_ends_idle_sessions_with_quit()
    {
        var options = Reuse();
        var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream();
        await SendOneAsync(upstream, options, cache);
        Assert.That(upstream.Sessions[0].HasEnded, Is.False);

        await cache.DisposeAsync();

        Assert.That(await Wait.ForAsync(upstream.Sessions[0].Ended, "the idle session to end"), Is.EqualTo(UpstreamEnd.Quit));
        Assert.That(cache.IdleCount, Is.Zero);
    }

    [Test]
    public async Task Each_message_on_a_shared_session_keeps_its_own_trace_header()
    {
        var options = Reuse();
        await using var cache = CacheFor(options);
        await using var upstream = new ScriptedUpstream();

        await SendOneAsync(upstream, options, cache);
        await SendOneAsync(upstream, options, cache);

        var messages = upstream.Sessions[0].Messages;
        Assert.That(messages, Has.Count.EqualTo(2));
        var headers = messages.Select(m => RelayHarness.SplitTraceHeader(m).Header).ToList();
        Assert.That(headers, Has.All.StartWith("X-Interceptor-Origin: uid="));
        Assert.That(headers.Distinct().Count(), Is.EqualTo(2), "one event id per message");
        Assert.That(RelayHarness.SplitTraceHeader(messages[1]).Body, Is.EqualTo(System.Text.Encoding.ASCII.GetBytes(Body)));
    }
}
