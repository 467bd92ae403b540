using Interceptor.Core.Attribution;
using Interceptor.Daemon.Metrics;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>
/// How the metrics port's lines (who holds it, what the sweep closed) name the raw uids the kernel's socket table gives:
/// by user, a sub-UID under the owner of its range, so that one customer's sub-UIDs cannot crowd another out of the line.
/// </summary>
[TestFixture]
public class MetricsEndpointHoldersTests
{
    // Root (uid 0) owns a range far above any account; nobody (65534) has none.
    private const uint RangeStart = 3_000_000_000;

    private static SubordinateUidOwner? OwnerOf(uint uid) => uid >= RangeStart ? new SubordinateUidOwner(0, "root") : null;

    [Test]
    public void Plain_uids_are_named_with_their_accounts_in_order() =>
        Assert.That(MetricsEndpoint.Describe([65534, 0, 65534], OwnerOf), Is.EqualTo("uid 0 (root), uid 65534 (nobody)"));

    [Test]
    public void Sub_uids_are_named_under_their_owner_and_the_owner_with_them()
    {
        Assert.Multiple(() =>
        {
            Assert.That(MetricsEndpoint.Describe([RangeStart + 7], OwnerOf), Is.EqualTo($"sub-UID {RangeStart + 7} of uid 0 (root)"));
            Assert.That(MetricsEndpoint.Describe([RangeStart + 9, RangeStart + 7, 0], OwnerOf), Is.EqualTo($"uid 0 (root) with sub-UIDs {RangeStart + 7}, {RangeStart + 9}"));
            Assert.That(MetricsEndpoint.Describe([.. Enumerable.Range(0, 5).Select(i => RangeStart + (uint)i)], OwnerOf),
                Is.EqualTo($"5 sub-UIDs of uid 0 (root) ({RangeStart}, {RangeStart + 1}, {RangeStart + 2}, …)"));
            Assert.That(MetricsEndpoint.Describe([0, .. Enumerable.Range(0, 4).Select(i => RangeStart + (uint)i)], OwnerOf),
                Is.EqualTo($"uid 0 (root) with 4 sub-UIDs ({RangeStart}, {RangeStart + 1}, {RangeStart + 2}, …)"));
        });
    }

    [Test]
    public void Many_sub_uids_of_one_owner_cannot_hide_another_user()
    {
        // A hundred of root's sub-UIDs, then nobody: by raw uid, nobody would be the 101st and unnamed.
        uint[] uids = [.. Enumerable.Range(0, 100).Select(i => RangeStart + (uint)i), 65534];

        Assert.That(MetricsEndpoint.Describe(uids, OwnerOf), Is.EqualTo($"100 sub-UIDs of uid 0 (root) ({RangeStart}, {RangeStart + 1}, {RangeStart + 2}, …), uid 65534 (nobody)"));
        Assert.That(MetricsEndpoint.Describe([1, 2, 3, 4, 5], _ => null), Does.EndWith("and 2 more users"));
    }
}
