using System.Globalization;

namespace Interceptor.Core.Attribution;

/// <summary>An inclusive range of uids, e.g. the 65,536 subordinate uids useradd gives a user.</summary>
public readonly record struct UidRange : IComparable<UidRange>
{
    /// <summary>The highest valid uid: (uid_t)-1 means "no uid" to the kernel and can never own a socket.</summary>
    public const uint MaxUid = uint.MaxValue - 1;

    public UidRange(uint first, uint last)
    {
        if (last < first || last > MaxUid)
        {
            throw new ArgumentOutOfRangeException(nameof(last), last, $"a uid range must satisfy first <= last <= {MaxUid} (first {first})");
        }

        First = first;
        Last = last;
    }

    public uint First { get; }

    public uint Last { get; }

    public ulong Count => (ulong)Last - First + 1;

    public bool Contains(uint uid) => uid >= First && uid <= Last;

    public bool Overlaps(UidRange other) => First <= other.Last && other.First <= Last;

    public int CompareTo(UidRange other) => First != other.First ? First.CompareTo(other.First) : Last.CompareTo(other.Last);

    public static bool operator <(UidRange left, UidRange right) => left.CompareTo(right) < 0;

    public static bool operator <=(UidRange left, UidRange right) => left.CompareTo(right) <= 0;

    public static bool operator >(UidRange left, UidRange right) => left.CompareTo(right) > 0;

    public static bool operator >=(UidRange left, UidRange right) => left.CompareTo(right) >= 0;

    /// <summary>As nft writes an interval element: <c>300000-365535</c>, or a single number.</summary>
    public override string ToString() =>
        First == Last
            ? First.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{First}-{Last}");

    /// <summary>
    /// Sorted, with overlapping and adjacent ranges joined: the canonical form the kernel set is rendered and
    /// compared in, whatever order and overlaps the input had.
    /// </summary>
    public static IReadOnlyList<UidRange> Merge(IEnumerable<UidRange> ranges)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        var merged = new List<UidRange>();
        foreach (var range in ranges.Order())
        {
            if (merged.Count > 0 && (ulong)merged[^1].Last + 1 >= range.First)
            {
                var last = merged[^1];
                merged[^1] = new UidRange(last.First, Math.Max(last.Last, range.Last));
            }
            else
            {
                merged.Add(range);
            }
        }

        return merged.AsReadOnly();
    }
}
