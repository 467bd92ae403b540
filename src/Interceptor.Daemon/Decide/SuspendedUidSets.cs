using Interceptor.Core.Attribution;
using Interceptor.Linux;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Decide;

/// <summary>
/// What the kernel's sets that follow /etc/subuid must hold: for a list of suspended users their uids (suspended_uids)
/// and the ranges they own (suspended_subuids), and every owner's ranges for the connection rate (ratelimit_subuids and
/// one rule per owner), read as of now, so a range added to the file while the daemon runs is covered at the table
/// watchdog's next check.
/// </summary>
public sealed class SuspendedUidSets(SubordinateUidFile? subordinates)
{
    /// <summary>No subordinate uids at all (tests, or a host without /etc/subuid).</summary>
    public static SuspendedUidSets None { get; } = new(null);

    public IReadOnlyList<UidRange> RangesOf(IEnumerable<uint> suspendedUids) =>
        subordinates?.Current.RangesOwnedBy(suspendedUids) ?? [];

    /// <summary>
    /// The spec with both suspension sets filled for <paramref name="suspendedUids"/> and the sub-UID ranges of the
    /// connection rate as the file says now (without a file to follow, the spec's own ranges are kept).
    /// </summary>
    public RulesetSpec Apply(RulesetSpec spec, IEnumerable<uint> suspendedUids)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var uids = suspendedUids.ToList();
        return spec with
        {
            SuspendedUids = uids,
            SuspendedUidRanges = RangesOf(uids),
            SubordinateUidRanges = subordinates is null ? spec.SubordinateUidRanges : OwnedRanges(subordinates.Current),
        };
    }

    /// <summary>Every range of the map with its owner's uid, as <see cref="RulesetSpec.SubordinateUidRanges"/> takes them.</summary>
    public static IReadOnlyList<OwnedUidRange> OwnedRanges(SubordinateUidMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return [.. map.Ranges.Select(r => new OwnedUidRange(r.Owner.Uid, r.Range))];
    }
}
