namespace Interceptor.Core.Attribution;

/// <summary>A user who owns a range of subordinate uids, already resolved to a uid and a login name.</summary>
public sealed record SubordinateUidOwner(uint Uid, string Name);

/// <summary>One range of /etc/subuid with its resolved owner.</summary>
public sealed record SubordinateUidRange(UidRange Range, SubordinateUidOwner Owner, int LineNumber);

/// <summary>
/// Who owns which subordinate uids: the lookup every accepted connection makes (binary search over disjoint
/// ranges) and the ranges of given owners (for the kernel's suspended set). Immutable; a reload builds a new one.
/// </summary>
public sealed class SubordinateUidMap
{
    private readonly SubordinateUidRange[] _ranges;

    /// <summary>
    /// Builds the map. Ranges of different owners must not overlap: such a uid could belong to either, so the
    /// later line (by line number) loses the overlapping range and a problem names both lines. A user's own
    /// overlapping lines are harmless and kept.
    /// </summary>
    public SubordinateUidMap(IEnumerable<SubordinateUidRange> ranges, out IReadOnlyList<string> problems)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        var found = new List<string>();
        var kept = new List<SubordinateUidRange>();
        foreach (var candidate in ranges.OrderBy(r => r.LineNumber))
        {
            var clash = kept.FirstOrDefault(k => k.Owner.Uid != candidate.Owner.Uid && k.Range.Overlaps(candidate.Range));
            if (clash is not null)
            {
                found.Add($"line {candidate.LineNumber}: range {candidate.Range} of {candidate.Owner.Name} overlaps line {clash.LineNumber} "
                    + $"({clash.Range} of {clash.Owner.Name}); the earlier line wins");
                continue;
            }

            kept.Add(candidate);
        }

        // One owner's overlapping lines are merged per owner, so the array stays disjoint for the binary search.
        _ranges = [.. kept.GroupBy(r => r.Owner.Uid)
            .SelectMany(g => UidRange.Merge(g.Select(r => r.Range)).Select(m => new SubordinateUidRange(m, g.First().Owner, g.Min(r => r.LineNumber))))
            .OrderBy(r => r.Range.First)];
        problems = found.AsReadOnly();
    }

    public static SubordinateUidMap Empty { get; } = new([], out _);

    public int Count => _ranges.Length;

    public IReadOnlyList<SubordinateUidRange> Ranges => _ranges;

    /// <summary>The owner of <paramref name="uid"/> when it is a subordinate uid, else null. O(log n).</summary>
    public SubordinateUidOwner? FindOwner(uint uid) => FindRange(uid)?.Owner;

    /// <summary>
    /// The ranges that hold accounts of their own, other than their owner's: each such account's connections are charged
    /// to the range's owner, who can also become it through newuidmap (a misconfigured host). In the order of the ranges,
    /// each with its accounts by uid.
    /// </summary>
    public IReadOnlyList<(SubordinateUidRange Range, IReadOnlyList<(uint Uid, string Name)> Accounts)> AccountsInside(
        IEnumerable<(uint Uid, string Name)> accounts)
    {
        ArgumentNullException.ThrowIfNull(accounts);
        var inside = new Dictionary<SubordinateUidRange, SortedDictionary<uint, string>>();
        foreach (var (uid, name) in accounts)
        {
            if (FindRange(uid) is { } range && range.Owner.Uid != uid)
            {
                var held = inside.TryGetValue(range, out var found) ? found : inside[range] = [];
                held.TryAdd(uid, name);
            }
        }

        return [.. inside.OrderBy(p => p.Key.Range.First)
            .Select(p => (p.Key, (IReadOnlyList<(uint, string)>)[.. p.Value.Select(a => (a.Key, a.Value))]))];
    }

    private SubordinateUidRange? FindRange(uint uid)
    {
        int low = 0, high = _ranges.Length - 1;
        while (low <= high)
        {
            var middle = low + ((high - low) / 2);
            var range = _ranges[middle].Range;
            if (uid < range.First)
            {
                high = middle - 1;
            }
            else if (uid > range.Last)
            {
                low = middle + 1;
            }
            else
            {
                return _ranges[middle];
            }
        }

        return null;
    }

    /// <summary>All subordinate uids of these owners, sorted and merged (empty when none has a range).</summary>
    public IReadOnlyList<UidRange> RangesOwnedBy(IEnumerable<uint> owners)
    {
        ArgumentNullException.ThrowIfNull(owners);
        var wanted = owners.ToHashSet();
        return wanted.Count == 0 ? [] : UidRange.Merge(_ranges.Where(r => wanted.Contains(r.Owner.Uid)).Select(r => r.Range));
    }
}
