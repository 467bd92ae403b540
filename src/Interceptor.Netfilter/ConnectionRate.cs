using System.Globalization;

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
