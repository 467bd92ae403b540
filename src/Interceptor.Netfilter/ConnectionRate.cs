using System.Globalization;
using Interceptor.Core.Attribution;

namespace Interceptor.Netfilter;

/// <summary>
/// A kernel token bucket for new connections (<c>Limits.*.ConnectionsPerSecond</c> and <c>ConnectionsBurst</c>): a
/// uid may open <see cref="PerSecond"/> connections a second on average and up to <see cref="Burst"/> more at once;
/// beyond that the kernel refuses the SYN. Both are at least 1: "off" is the absence of a rate, not a zero.
/// </summary>
public sealed record ConnectionRate
{
    public ConnectionRate(int perSecond, int burst)
    {
        PerSecond = Check(perSecond, nameof(perSecond));
        Burst = Check(burst, nameof(burst));
    }

    public int PerSecond { get; }

    public int Burst { get; }

    /// <summary>As nft writes it in a rule: <c>limit rate over 20/second burst 50 packets</c>.</summary>
    public string LimitOver =>
        string.Create(CultureInfo.InvariantCulture, $"limit rate over {PerSecond}/second burst {Burst} packets");

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{PerSecond}/s burst {Burst}");

    private static int Check(int value, string name) =>
        value is >= 1 and <= 1_000_000
            ? value
            : throw new ArgumentOutOfRangeException(name, value, $"a connection rate's {name} must be 1-1000000");
}

/// <summary>
/// One user's own connection rate (<c>Limits.Users.NAME.ConnectionsPerSecond</c> / <c>ConnectionsBurst</c>), resolved
/// to the uid: its own rule with its own bucket and counter instead of the default meter. A null
/// <see cref="Rate"/> means this user is not limited at all (the override says 0).
/// </summary>
public sealed record UidConnectionRate(uint Uid, ConnectionRate? Rate)
{
    /// <summary>The named counter of this user's refusals, <c>ratelimit_refused_uid1001</c>.</summary>
    public string CounterName => CounterNameFor(Uid);

    public static string CounterNameFor(uint uid) =>
        RulesetSpec.RateLimitCounterName + "_uid" + uid.ToString(CultureInfo.InvariantCulture);

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Uid}: {(Rate is null ? "unlimited" : Rate.ToString())}");
}

/// <summary>One range of subordinate uids (/etc/subuid) and the user who owns it, as the kernel's rate rules need them.</summary>
public readonly record struct OwnedUidRange(uint Owner, UidRange Range)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Range} of {Owner}");
}

/// <summary>
/// The sub-UIDs of one owner and the rate they share: one kernel bucket for all of them, never the per-uid meter, so a
/// range of 65,536 uids counts as one source and cannot fill the meter. A null <see cref="Rate"/>: the owner is not
/// limited (its own rate is 0, or there is no default), so neither are its sub-UIDs; they still stay out of the meter.
/// </summary>
public sealed record SubordinateConnectionRate(uint Owner, IReadOnlyList<UidRange> Ranges, ConnectionRate? Rate)
{
    /// <summary>The named counter of the refusals of this owner's sub-UIDs, <c>ratelimit_refused_subuids_uid1001</c>.</summary>
    public string CounterName => CounterNameFor(Owner);

    public static string CounterNameFor(uint owner) =>
        RulesetSpec.RateLimitCounterName + "_subuids_uid" + owner.ToString(CultureInfo.InvariantCulture);

    /// <summary>As nft prints the match: one range bare, several as an anonymous set.</summary>
    public string SkuidExpression => Ranges.Count == 1 ? Ranges[0].ToString() : $"{{ {string.Join(", ", Ranges)} }}";

    public bool Equals(SubordinateConnectionRate? other) =>
        other is not null && Owner == other.Owner && Ranges.SequenceEqual(other.Ranges) && Equals(Rate, other.Rate);

    public override int GetHashCode() => HashCode.Combine(Owner, Ranges.Count, Rate);

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"sub-uids {string.Join(", ", Ranges)} of {Owner}: {(Rate is null ? "unlimited" : Rate.ToString())}");
}
