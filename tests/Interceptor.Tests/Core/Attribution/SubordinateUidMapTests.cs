using Interceptor.Core.Attribution;
using NUnit.Framework;

namespace Interceptor.Tests.Core.Attribution;

public class SubordinateUidMapTests
{
    private static readonly SubordinateUidOwner Alice = new(1001, "alice");
    private static readonly SubordinateUidOwner Bob = new(1002, "bob");

    private static SubordinateUidMap Map(out IReadOnlyList<string> problems, params SubordinateUidRange[] ranges) => new(ranges, out problems);

    [Test]
    public void A_uid_inside_a_range_belongs_to_its_owner_and_one_outside_to_nobody()
    {
        var map = Map(out var problems,
            new SubordinateUidRange(new UidRange(165536, 231071), Bob, 2),
            new SubordinateUidRange(new UidRange(100000, 165535), Alice, 1));
        Assert.Multiple(() =>
        {
            Assert.That(problems, Is.Empty);
            Assert.That(map.FindOwner(100000), Is.EqualTo(Alice));
            Assert.That(map.FindOwner(165535), Is.EqualTo(Alice));
            Assert.That(map.FindOwner(165536), Is.EqualTo(Bob));
            Assert.That(map.FindOwner(231071), Is.EqualTo(Bob));
            Assert.That(map.FindOwner(99999), Is.Null);
            Assert.That(map.FindOwner(231072), Is.Null);
            Assert.That(map.FindOwner(1001), Is.Null, "the owner's own uid is not a sub-UID");
            Assert.That(SubordinateUidMap.Empty.FindOwner(100000), Is.Null);
        });
    }

    [Test]
    public void Overlapping_ranges_of_two_owners_keep_the_earlier_line_and_say_so()
    {
        var map = Map(out var problems,
            new SubordinateUidRange(new UidRange(100000, 165535), Alice, 1),
            new SubordinateUidRange(new UidRange(160000, 200000), Bob, 2));
        Assert.Multiple(() =>
        {
            Assert.That(map.FindOwner(160000), Is.EqualTo(Alice));
            Assert.That(map.FindOwner(190000), Is.Null, "bob's whole line is dropped");
            Assert.That(problems.Single(), Does.StartWith("line 2: range 160000-200000 of bob overlaps line 1 (100000-165535 of alice)"));
        });
    }

    [Test]
    public void The_ranges_of_given_owners_come_sorted_and_merged()
    {
        var map = Map(out _,
            new SubordinateUidRange(new UidRange(300000, 300009), Alice, 3),
            new SubordinateUidRange(new UidRange(100000, 165535), Alice, 1),
            new SubordinateUidRange(new UidRange(165536, 231071), Bob, 2),
            new SubordinateUidRange(new UidRange(100005, 100006), Alice, 4));
        Assert.Multiple(() =>
        {
            Assert.That(map.RangesOwnedBy([1001]), Is.EqualTo(new[] { new UidRange(100000, 165535), new UidRange(300000, 300009) }));
            Assert.That(map.RangesOwnedBy([1001, 1002]), Is.EqualTo(new[] { new UidRange(100000, 231071), new UidRange(300000, 300009) }),
                "adjacent ranges of two suspended users become one interval");
            Assert.That(map.RangesOwnedBy([4242]), Is.Empty);
            Assert.That(map.RangesOwnedBy([]), Is.Empty);
        });
    }

    [Test]
    public void A_range_renders_as_an_nft_interval()
    {
        Assert.Multiple(() =>
        {
            Assert.That(new UidRange(300000, 365535).ToString(), Is.EqualTo("300000-365535"));
            Assert.That(new UidRange(7, 7).ToString(), Is.EqualTo("7"));
            Assert.That(new UidRange(7, 7).Count, Is.EqualTo(1));
            Assert.That(() => new UidRange(5, 4), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new UidRange(5, uint.MaxValue), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    [Test]
    public void Accounts_inside_a_range_other_than_its_owner_are_found_by_range()
    {
        var map = Map(out _,
            new SubordinateUidRange(new UidRange(1000, 5999), Alice, 1),
            new SubordinateUidRange(new UidRange(100000, 165535), Bob, 2));
        var accounts = new (uint, string)[] { (0, "root"), (1001, "alice"), (4000, "dave"), (1002, "bob"), (1002, "bob"), (6000, "erin"), (120000, "ghost") };

        var inside = map.AccountsInside(accounts);

        Assert.Multiple(() =>
        {
            Assert.That(inside, Has.Count.EqualTo(2));
            Assert.That(inside[0].Range.Owner, Is.EqualTo(Alice));
            Assert.That(inside[0].Accounts, Is.EqualTo(new (uint, string)[] { (1002, "bob"), (4000, "dave") }),
                "by uid, once each; alice's own uid in her range is hers anyway, erin is past its end");
            Assert.That(inside[1].Range.Owner, Is.EqualTo(Bob));
            Assert.That(inside[1].Accounts, Is.EqualTo(new (uint, string)[] { (120000, "ghost") }));
            Assert.That(Map(out _, new SubordinateUidRange(new UidRange(100000, 165535), Bob, 1)).AccountsInside(accounts[..4]), Is.Empty);
        });
    }
}
