using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;

namespace Interceptor.Tests.Core.Policy;

public class UnlimitedMailPolicyTests
{
    private static TransactionEvent Event(string id) =>
        new(id, DateTimeOffset.UnixEpoch, 1001, "alice", "a@b", 1, 10, "203.0.113.5:25", "203.0.113.5:25", "250 ok", TimeSpan.Zero) { Outcome = TransactionOutcome.Delivered };

    [Test]
    public async Task Connections_and_messages_are_admitted_beyond_every_quota_and_nothing_is_refused_later()
    {
        var policy = new UnlimitedMailPolicy();

        for (var i = 0; i < 3 * QuotaLimits.Defaults.MessagesPerDay!.Value; i++)
        {
            Assert.That(await policy.OpenConnectionAsync(1001, "alice", CancellationToken.None), Is.Null);
            var (ticket, refusal) = await policy.StartMessageAsync(1001, "alice", 10, CancellationToken.None);
            Assert.That(refusal, Is.Null);
            Assert.That(await policy.ReserveRecipientAsync(ticket!, CancellationToken.None), Is.Null);
            Assert.That(await policy.BeginDataAsync(ticket!, Event($"t{i}"), CancellationToken.None), Is.Null);
            await policy.FinishAsync(ticket!, Event($"t{i}"), CancellationToken.None);
        }
    }

    [Test]
    public async Task A_message_keeps_the_given_bounds_with_the_daemons_refusal_texts()
    {
        var policy = new UnlimitedMailPolicy(new QuotaLimits { MessageSizeBytes = 1000, RecipientsPerMessage = 2 });
        var (_, tooBig) = await policy.StartMessageAsync(1001, "alice", 1001, CancellationToken.None);
        var (ticket, _) = await policy.StartMessageAsync(1001, "alice", 1000, CancellationToken.None);

        Assert.That(await policy.ReserveRecipientAsync(ticket!, CancellationToken.None), Is.Null);
        Assert.That(await policy.ReserveRecipientAsync(ticket!, CancellationToken.None), Is.Null);
        var third = await policy.ReserveRecipientAsync(ticket!, CancellationToken.None);
        policy.ReleaseRecipient(ticket!);
        var afterRelease = await policy.ReserveRecipientAsync(ticket!, CancellationToken.None);

        Assert.That(tooBig!.ToString(), Is.EqualTo("552 5.3.4 message size 1001 exceeds the limit of 1000 bytes for user alice"));
        Assert.That(third!.ToString(), Is.EqualTo("452 4.5.3 too many recipients for user alice (2/2 per message); send the rest in another message"));
        Assert.That(afterRelease, Is.Null, "a recipient the upstream refused frees its place");
        Assert.That(policy.LimitsFor("alice").MessageSizeBytes, Is.EqualTo(1000));
    }

    [Test]
    public void Without_bounds_given_a_message_has_the_default_bounds()
    {
        var limits = new UnlimitedMailPolicy().LimitsFor("anyone");

        Assert.That(limits.MessageSizeBytes, Is.EqualTo(QuotaLimits.Defaults.MessageSizeBytes));
        Assert.That(limits.RecipientsPerMessage, Is.EqualTo(QuotaLimits.Defaults.RecipientsPerMessage));
        Assert.That(limits.MessagesPerHour, Is.Null, "no quota over time");
    }
}
