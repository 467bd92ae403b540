using Interceptor.Daemon.Metrics;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>The metrics endpoint's slots: the cap, each owner's share of it, owners not found sharing one share.</summary>
[TestFixture]
public sealed class PeerSlotsTests
{
    [Test]
    public void An_owner_gets_her_share_others_the_rest_and_a_slot_comes_back_once()
    {
        var slots = new PeerSlots(capacity: 5, perOwner: 2);
        var alice = new[] { slots.TryTake(1001, unlimited: false, out _), slots.TryTake(1001, unlimited: false, out _) };
        var third = slots.TryTake(1001, unlimited: false, out var aliceRefused);
        var unknown = new[] { slots.TryTake(null, unlimited: false, out _), slots.TryTake(null, unlimited: false, out _) };
        var unknownThird = slots.TryTake(null, unlimited: false, out var unknownRefused);
        var root = slots.TryTake(0, unlimited: false, out _);
        var rootAgain = slots.TryTake(0, unlimited: false, out var full);
        Assert.Multiple(() =>
        {
            Assert.That(alice, Has.All.Not.Null);
            Assert.That((third, aliceRefused), Is.EqualTo(((PeerSlots.Slot?)null, PeerRefusal.OwnerFull)));
            Assert.That(unknown, Has.All.Not.Null, "owners not found share one share");
            Assert.That((unknownThird, unknownRefused), Is.EqualTo(((PeerSlots.Slot?)null, PeerRefusal.OwnerFull)));
            Assert.That(root, Is.Not.Null, "another user is not held back by hers");
            Assert.That((rootAgain, full), Is.EqualTo(((PeerSlots.Slot?)null, PeerRefusal.Full)), "the cap holds for everyone");
            Assert.That(slots.InUse, Is.EqualTo(5));
        });

        alice[0]!.Dispose();
        alice[0]!.Dispose();
        Assert.That(slots.InUse, Is.EqualTo(4), "given back once");
        Assert.That(slots.TryTake(1001, unlimited: false, out _), Is.Not.Null, "her share has room again");
    }

    [Test]
    public void Without_owners_only_the_cap_applies()
    {
        var slots = new PeerSlots(capacity: 3, perOwner: 1);
        var taken = Enumerable.Range(0, 4).Select(i => slots.TryTake(null, unlimited: true, out _)).ToList();
        Assert.That(taken.Select(s => s is not null), Is.EqualTo(new[] { true, true, true, false }));
    }
}
