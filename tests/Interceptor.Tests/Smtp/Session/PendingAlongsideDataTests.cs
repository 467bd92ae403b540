using Interceptor.Core.Events;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// DATA when the pending row cannot be committed at once (the store's writer is busy): the upstream's DATA goes out while
/// the row commits, the client's 354 and the message wait for the row, and a row that fails after the upstream's 354
/// leaves the upstream without a message (the connection is dropped) and the client with a 451.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class PendingAlongsideDataTests
{
    [Test]
    public async Task The_upstreams_DATA_goes_out_while_the_pending_row_commits_and_the_client_gets_354_only_after_it()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var (session, store, held) = await SendDataWhileTheRowIsHeldAsync(upstream, relay);
        Assert.That(store.TransactionWrites, Is.Empty, "the row is still held: DATA did not wait for it");

        held.SetResult();
        var go = await relay.Client.ReadReplyAsync();
        await relay.Client.SendAsync("Subject: hi\r\n\r\nbody\r\n.\r\n");
        var final = await relay.Client.ReadReplyAsync();

        Assert.Multiple(() =>
        {
            Assert.That(go.Code, Is.EqualTo(354), go.Text);
            Assert.That(final.Code, Is.EqualTo(250), final.Text);
            Assert.That(session.Messages, Has.Count.EqualTo(1));
            Assert.That(store.TransactionWrites[0].Outcome, Is.EqualTo(TransactionOutcome.Pending), "the pending row came first");
        });
    }

    [Test]
    public async Task A_pending_row_that_fails_after_the_upstreams_354_drops_the_upstream_and_tells_the_client_451()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        var (session, store, held) = await SendDataWhileTheRowIsHeldAsync(upstream, relay);
        store.Broken = true;
        held.SetResult();
        var refusal = await relay.Client.ReadReplyAsync();
        var ended = await Wait.ForAsync(session.Ended, "the upstream connection's end");
        store.Broken = false;
        var quit = await relay.Client.CommandAsync("QUIT");

        Assert.Multiple(() =>
        {
            Assert.That(refusal.Code, Is.EqualTo(451), refusal.Text);
            Assert.That(ended, Is.Not.EqualTo(UpstreamEnd.Quit), "a QUIT after 354 would be a line of the message");
            Assert.That(session.Messages, Is.Empty, "nothing was relayed");
            Assert.That(session.PartialData, Is.Empty, "not a byte of a message went upstream");
            Assert.That(quit.Code, Is.EqualTo(221), "the session goes on after the refusal");
            Assert.That(store.TransactionWrites.Select(t => t.Outcome), Has.None.EqualTo(TransactionOutcome.Pending));
        });
    }

    /// <summary>An envelope, then DATA with the store holding the pending row; returns once the upstream got its DATA.</summary>
    private static async Task<(UpstreamSessionRecord Session, MemoryStore Store, TaskCompletionSource Held)> SendDataWhileTheRowIsHeldAsync(
        ScriptedUpstream upstream, RelayHarness relay)
    {
        var store = relay.Policy.Store;
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.HeldPending = held;
        await relay.Client.GreetAsync();
        Assert.That((await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>")).Code, Is.EqualTo(250));
        Assert.That((await relay.Client.CommandAsync("RCPT TO:<bob@example.net>")).Code, Is.EqualTo(250));

        await relay.Client.SendAsync("DATA\r\n");
        var session = await upstream.SessionAsync(0);
        await Wait.UntilAsync(() => session.Commands.Contains("DATA"), "the upstream's DATA while the pending row is held");
        return (session, store, held);
    }
}
