using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Data;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hold;

/// <summary>Suspension.Action=Hold: automatic suspensions hold mail (out of the kernel's set), an admin's block refuses.</summary>
[TestFixture]
public sealed class SuspendedUserHoldStageTests
{
    private static readonly DateTimeOffset Now = new(2030, 5, 1, 12, 0, 0, TimeSpan.Zero);

    private static (SuspensionRegistry Registry, RecordingKernel Kernel) Registry(bool holding)
    {
        var kernel = new RecordingKernel();
        return (new SuspensionRegistry(new MemoryStore(), kernel, kernel)
        {
            HoldsInstead = holding ? s => s.Source == SuspensionSource.Automatic : null,
        }, kernel);
    }

    [Test]
    public async Task An_automatically_suspended_users_messages_are_held_with_the_reason_others_continue()
    {
        var (registry, kernel) = Registry(holding: true);
        await registry.SuspendAsync(new Suspension(1001, "alice", "50 refusals in 60 min", Now, SuspensionSource.Automatic), new Dictionary<string, string>(), CancellationToken.None);
        var stage = new SuspendedUserHoldStage(registry);

        var alice = await stage.CompleteAsync(HoldSamples.Message(uid: 1001, user: "alice"), new BytesSpool("x\r\n"), CancellationToken.None);
        var bob = await stage.CompleteAsync(HoldSamples.Message(uid: 1002, user: "bob"), new BytesSpool("x\r\n"), CancellationToken.None);

        Assert.That(alice.Decision, Is.EqualTo(StageDecision.Hold));
        Assert.That(alice.Finding!.Summary, Is.EqualTo("user alice is suspended: 50 refusals in 60 min"));
        Assert.That(bob.Decision, Is.EqualTo(StageDecision.Continue));
        Assert.That(stage.NeedsWholeMessage, Is.True);
        Assert.That(kernel.Suspended, Is.Empty, "a held user's connections must reach the daemon");
        Assert.That(registry.Refuses(1001, out _), Is.False);
        Assert.That(registry.HoldsMailOf(1001, out _), Is.True);
        Assert.That(registry.KernelRefused, Is.Empty);
        Assert.That(registry.All.Select(s => s.Uid), Is.EqualTo(new[] { 1001u }));
    }

    [Test]
    public async Task An_admins_block_still_refuses_in_the_kernel_even_when_holding()
    {
        var (registry, kernel) = Registry(holding: true);
        await registry.SuspendAsync(new Suspension(1002, "bob", "by hand", Now, SuspensionSource.Admin), new Dictionary<string, string>(), CancellationToken.None);
        var stage = new SuspendedUserHoldStage(registry);

        Assert.That(kernel.Suspended, Is.EqualTo(new[] { 1002u }));
        Assert.That(registry.Refuses(1002, out _), Is.True);
        Assert.That(registry.KernelRefused.Select(s => s.Uid), Is.EqualTo(new[] { 1002u }));
        Assert.That((await stage.CompleteAsync(HoldSamples.Message(uid: 1002, user: "bob"), null, CancellationToken.None)).Decision, Is.EqualTo(StageDecision.Continue));
    }

    [Test]
    public async Task With_Refuse_every_suspension_refuses_as_before()
    {
        var (registry, kernel) = Registry(holding: false);
        await registry.SuspendAsync(new Suspension(1001, "alice", "r", Now, SuspensionSource.Automatic), new Dictionary<string, string>(), CancellationToken.None);

        Assert.That(kernel.Suspended, Is.EqualTo(new[] { 1001u }));
        Assert.That(registry.Refuses(1001, out _), Is.True);
        Assert.That(registry.HoldsMailOf(1001, out _), Is.False);
    }

    [Test]
    public void A_held_transaction_counts_as_sent_so_a_suspended_users_held_mail_is_bounded_by_her_quotas() =>
        Assert.That(TransactionEvent.CountsAsSent(TransactionOutcome.Held), Is.True);
}
