using Interceptor.Core.Attribution;
using Interceptor.Linux;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Decide;

/// <summary>
/// What the kernel's two suspension sets must hold for a list of suspended users: their uids (suspended_uids) and
/// the ranges they own in /etc/subuid (suspended_subuids), read as of now, so a range added while a user is
/// suspended is covered at the table watchdog's next check.
/// </summary>
public sealed class SuspendedUidSets(SubordinateUidFile? subordinates)
{
    /// <summary>No subordinate uids at all (tests, or a host without /etc/subuid).</summary>
    public static SuspendedUidSets None { get; } = new(null);

    public IReadOnlyList<UidRange> RangesOf(IEnumerable<uint> suspendedUids) =>
        subordinates?.Current.RangesOwnedBy(suspendedUids) ?? [];

    /// <summary>The spec with both sets filled for <paramref name="suspendedUids"/>.</summary>
    public RulesetSpec Apply(RulesetSpec spec, IEnumerable<uint> suspendedUids)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var uids = suspendedUids.ToList();
        return spec with { SuspendedUids = uids, SuspendedUidRanges = RangesOf(uids) };
    }
}
