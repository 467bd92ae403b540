using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Core.Replies;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// Issue 19 (latency): the pending row is committed while DATA makes its round trip upstream, not before it; still no
/// byte of the message goes upstream unless the row is on disk (fail closed).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class PendingRecordTests
{
    [Test]
    public async Task The_pending_row_is_written_while_data_is_already_upstream()
    {
        await using var upstream = new ScriptedUpstream();
        var fixture = new PolicyFixture(RelayHarness.Options.Limits);
        var policy = new WaitingForUpstreamData(fixture.Policy, upstream);
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint, policy: policy);
        await relay.Client.GreetAsync();

        var final = await relay.Client.SendMessageAsync("alice@customer.test", ["bob@example.net"], "Subject: x\r\n\r\nbody\r\n");

        // Written one after the other, the row would wait for a DATA that waits for the row: this would time out.
        Assert.That(policy.SawDataUpstreamFirst, Is.True, "DATA reached the upstream before the pending row was written");
        Assert.That(final.Code, Is.EqualTo(250), final.Text);
        Assert.That((await upstream.SessionAsync(0)).Messages, Has.Count.EqualTo(1));
        Assert.That(fixture.Store.TransactionWrites.Select(t => t.Outcome), Does.Contain(TransactionOutcome.Pending));
    }

    [Test]
    public async Task When_the_pending_row_cannot_be_written_the_client_gets_451_at_data_and_the_upstreams_data_is_dropped()
    {
        await using var upstream = new ScriptedUpstream();
        await using var relay = await RelayHarness.StartAsync(upstream.EndPoint);
        await relay.Client.GreetAsync();
        await relay.Client.CommandAsync("MAIL FROM:<alice@customer.test>");
        await relay.Client.CommandAsync("RCPT TO:<bob@example.net>");
        relay.Policy.Store.Broken = true;

        var data = await relay.Client.CommandAsync("DATA");

        Assert.That(data.Code, Is.EqualTo(451), data.Text);
        var session = await upstream.SessionAsync(0);
        Assert.That(session.Commands, Does.Contain("DATA"), "DATA went upstream at once");
        Assert.That(await session.Ended.WaitAsync(TimeSpan.FromSeconds(10)), Is.Not.EqualTo(UpstreamEnd.Quit),
            "the upstream in DATA was dropped (which discards it), never ended with QUIT, which would be a line of the message");
        Assert.That(session.Messages, Is.Empty);
        Assert.That(relay.Recorder.Events.Single().Unsent, Is.EqualTo(UnsentKind.RefusedAtData));
        Assert.That((await relay.Client.CommandAsync("NOOP")).Code, Is.EqualTo(250), "the session goes on");
    }

    /// <summary>The daemon's policy, except that the pending row waits until the upstream has received DATA.</summary>
    private sealed class WaitingForUpstreamData(IMailPolicy inner, ScriptedUpstream upstream) : IMailPolicy
    {
        public bool SawDataUpstreamFirst { get; private set; }

        public QuotaLimits LimitsFor(string user) => inner.LimitsFor(user);

        public Task<SmtpReply?> OpenConnectionAsync(uint uid, string user, CancellationToken cancellationToken) =>
            inner.OpenConnectionAsync(uid, user, cancellationToken);

        public void CloseConnection(uint uid) => inner.CloseConnection(uid);

        public Task<(MessageTicket? Ticket, SmtpReply? Refusal)> StartMessageAsync(uint uid, string user, long? declaredSize, CancellationToken cancellationToken) =>
            inner.StartMessageAsync(uid, user, declaredSize, cancellationToken);

        public Task<SmtpReply?> ReserveRecipientAsync(MessageTicket ticket, CancellationToken cancellationToken) =>
            inner.ReserveRecipientAsync(ticket, cancellationToken);

        public void ReleaseRecipient(MessageTicket ticket) => inner.ReleaseRecipient(ticket);

        public async Task<SmtpReply?> BeginDataAsync(MessageTicket ticket, TransactionEvent pending, CancellationToken cancellationToken)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (DateTime.UtcNow < deadline && !SawDataUpstreamFirst)
            {
                SawDataUpstreamFirst = upstream.Sessions.Count > 0 && upstream.Sessions[0].Commands.Contains("DATA");
                await Task.Delay(10, CancellationToken.None);
            }

            return await inner.BeginDataAsync(ticket, pending, cancellationToken);
        }

        public Task FinishAsync(MessageTicket ticket, TransactionEvent final, CancellationToken cancellationToken) =>
            inner.FinishAsync(ticket, final, cancellationToken);
    }
}
