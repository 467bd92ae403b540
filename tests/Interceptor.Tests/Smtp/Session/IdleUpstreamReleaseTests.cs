using Interceptor.Core.Options;
using Interceptor.Smtp.Upstream;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// Relay.IdleClientReleaseSeconds: a client silent between transactions gives its upstream session back and takes one
/// again at its next MAIL; inside a transaction, or with the key at 0, the session keeps it however long the client waits.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class IdleUpstreamReleaseTests
{
    private static readonly TimeSpan ReleaseAfter = TimeSpan.FromMilliseconds(300);

    // Waits well past the release time, still far inside the harness's 2 s idle timeout.
    private static readonly TimeSpan Silence = TimeSpan.FromMilliseconds(900);

    private static InterceptorOptions Releasing(TimeSpan after) =>
        RelayHarness.Options with { Relay = RelayHarness.Options.Relay with { IdleClientRelease = after } };

    [Test]
    public async Task A_client_silent_after_ehlo_gives_its_upstream_back_with_quit_and_its_next_mail_opens_another()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, Releasing(ReleaseAfter));
        await relay.Client.GreetAsync();

        var first = await upstream.SessionAsync(0);
        var ended = await first.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(ended, Is.EqualTo(UpstreamEnd.Quit), "given back without reuse: ended politely");
        Assert.That(first.Commands.Any(c => c.StartsWith("MAIL", StringComparison.Ordinal)), Is.False);

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        var second = await upstream.SessionAsync(1);
        Assert.That(second.Messages, Has.Count.EqualTo(1), "the message went on the session opened at MAIL");
        Assert.That(upstream.Sessions, Has.Count.EqualTo(2));
        Assert.That((await relay.Client.CommandAsync("NOOP")).Code, Is.EqualTo(250), "the client's session went on throughout");
    }

    [Test]
    public async Task A_released_session_goes_to_the_reuse_cache_and_the_clients_next_mail_takes_it_back_without_a_new_greeting()
    {
        await using var upstream = new ScriptedUpstream();
        var settings = UpstreamSettings.From(RelayHarness.Options.Relay) with
        {
            Reuse = new UpstreamReuse(true, TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), 100, 4),
        };
        await using var cache = new UpstreamConnectionCache(settings);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, Releasing(ReleaseAfter), cache);
        await relay.Client.GreetAsync();
        await Wait.UntilAsync(() => cache.IdleCount == 1, "the idle client's upstream session to be kept in the cache");

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(1), "one connection: given back, kept, taken again");
        Assert.That(upstream.Sessions[0].Messages, Has.Count.EqualTo(1));
        Assert.That(cache.Reused, Is.EqualTo(1));
    }

    [Test]
    public async Task Inside_a_transaction_the_upstream_is_kept_however_long_the_client_waits()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, Releasing(ReleaseAfter));
        await relay.Client.GreetAsync();
        Assert.That((await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>")).Code, Is.EqualTo(250));
        await Task.Delay(Silence);
        Assert.That((await relay.Client.CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));
        await Task.Delay(Silence);
        Assert.That((await relay.Client.CommandAsync("DATA")).Code, Is.EqualTo(354));
        await relay.Client.SendAsync("Subject: x\r\n\r\nbody\r\n.\r\n");
        Assert.That((await relay.Client.ReadReplyAsync()).Code, Is.EqualTo(250));

        Assert.That(upstream.Sessions, Has.Count.EqualTo(1));
        Assert.That(upstream.Sessions[0].Messages, Has.Count.EqualTo(1));
        Assert.That(upstream.Sessions[0].HasEnded, Is.False, "still held: the client is between transactions for less than the release time");
    }

    [Test]
    public async Task With_the_key_at_zero_the_session_keeps_its_upstream_to_the_end()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, Releasing(TimeSpan.Zero));
        await relay.Client.GreetAsync();
        await Task.Delay(Silence);

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(1));
        Assert.That(upstream.Sessions[0].HasEnded, Is.False);
    }

    [Test]
    public async Task A_client_that_leaves_while_its_upstream_is_being_given_back_ends_cleanly()
    {
        // The release runs off the session's flow; the session's end must wait for it, never give the lease back twice.
        await using var upstream = new ScriptedUpstream(new UpstreamScript { Delays = new Dictionary<string, TimeSpan> { ["QUIT"] = TimeSpan.FromMilliseconds(500) } });
        var relay = await RelayHarness.StartAsync(upstream.EndPoint, Releasing(ReleaseAfter));
        await relay.Client.GreetAsync();
        await Task.Delay(ReleaseAfter + TimeSpan.FromMilliseconds(100));

        await relay.DisposeAsync();

        Assert.That(relay.Session.IsCompletedSuccessfully, Is.True);
        Assert.That(upstream.Sessions, Has.Count.EqualTo(1));
        Assert.That(upstream.Sessions[0].Commands.Count(c => c == "QUIT"), Is.EqualTo(1), "one QUIT: the session was given back once");
    }
}
