using Interceptor.Daemon.Metrics;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>The metrics endpoint's slots: the cap, each owner's share of it, owners not found sharing one share, the scraper's two.</summary>
[TestFixture]
public sealed class PeerSlotsTests
{
    [Test]
    public void An_owner_gets_her_share_others_the_rest_and_a_slot_comes_back_once()
    {
        var slots = new PeerSlots(capacity: 5, perOwner: 2);
        var alice = new[] { slots.TryTake(1001, unlimited: false, scraper: false, out _), slots.TryTake(1001, unlimited: false, scraper: false, out _) };
        var third = slots.TryTake(1001, unlimited: false, scraper: false, out var aliceRefused);
        var unknown = new[] { slots.TryTake(null, unlimited: false, scraper: false, out _), slots.TryTake(null, unlimited: false, scraper: false, out _) };
        var unknownThird = slots.TryTake(null, unlimited: false, scraper: false, out var unknownRefused);
        var root = slots.TryTake(0, unlimited: false, scraper: true, out _);
        var rootAgain = slots.TryTake(0, unlimited: false, scraper: true, out var full);
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
        Assert.That(slots.TryTake(1001, unlimited: false, scraper: false, out _), Is.Not.Null, "her share has room again");
    }

    [Test]
    public void The_slots_kept_for_the_scraper_are_never_taken_by_other_users()
    {
        // Three customers (say one of them through the web server's user) take two each: the last two are the scraper's.
        var slots = new PeerSlots(capacity: 8, perOwner: 2, keptForScrapers: 2);
        var others = new[] { 1001u, 1001u, 1002u, 1002u, 33u, 33u }.Select(uid => slots.TryTake(uid, unlimited: false, scraper: false, out _)).ToList();
        var fourth = slots.TryTake(1003, unlimited: false, scraper: false, out var refused);
        var scraper = new[] { slots.TryTake(998, unlimited: false, scraper: true, out _), slots.TryTake(998, unlimited: false, scraper: true, out _) };
        Assert.Multiple(() =>
        {
            Assert.That(others, Has.All.Not.Null);
            Assert.That((fourth, refused), Is.EqualTo(((PeerSlots.Slot?)null, PeerRefusal.Full)), "a fourth user finds only the scraper's slots");
            Assert.That(scraper, Has.All.Not.Null, "the scraper's user gets the two kept");
        });

        scraper[0]!.Dispose();
        others[0]!.Dispose();
        Assert.That(slots.TryTake(1003, unlimited: false, scraper: false, out _), Is.Not.Null, "a slot another user gave back");
        Assert.That(slots.TryTake(1004, unlimited: false, scraper: false, out _), Is.Null, "but not the scraper's");
    }

    [Test]
    public void Without_owners_only_the_cap_applies()
    {
        var slots = new PeerSlots(capacity: 3, perOwner: 1, keptForScrapers: 2);
        var taken = Enumerable.Range(0, 4).Select(i => slots.TryTake(null, unlimited: true, scraper: false, out _)).ToList();
        Assert.That(taken.Select(s => s is not null), Is.EqualTo(new[] { true, true, true, false }));
    }
}
