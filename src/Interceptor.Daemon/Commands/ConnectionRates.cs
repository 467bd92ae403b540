using Interceptor.Core.Options;
using Interceptor.Linux;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The kernel connection rates a configuration asks for (<c>Limits.*.ConnectionsPerSecond</c> / <c>ConnectionsBurst</c>),
/// resolved to uids for <see cref="RulesetSpec"/>: the default, and the users whose override sets either key.
/// </summary>
public static class ConnectionRates
{
    /// <summary>The default rate; null when <c>Limits.Default.ConnectionsPerSecond</c> is 0.</summary>
    public static ConnectionRate? Default(LimitsOptions limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        return RateOf(limits.For(null));
    }

    /// <summary>
    /// One entry per user whose override sets a connection key (the other key follows the default); a user not in the
    /// user database is an error, as for Routes.Users, because the kernel matches uids and could not limit a name.
    /// </summary>
    public static IReadOnlyList<UidConnectionRate> PerUser(LimitsOptions limits, List<string> errors, Func<string, uint?>? uidOf = null)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(errors);
        uidOf ??= UserDatabase.UidOf;
        var rates = new List<UidConnectionRate>();
        foreach (var (user, own) in limits.Users.OrderBy(u => u.Key, StringComparer.Ordinal))
        {
            if (own.ConnectionsPerSecond is null && own.ConnectionsBurst is null)
            {
                continue;
            }

            if (uidOf(user) is not { } uid)
            {
                errors.Add($"Limits.Users.{user}: no such user \"{user}\" in the user database (its ConnectionsPerSecond/ConnectionsBurst need a uid)");
                continue;
            }

            rates.Add(new UidConnectionRate(uid, RateOf(limits.For(user))));
        }

        return rates;
    }

    private static ConnectionRate? RateOf(QuotaLimits effective) =>
        effective.ConnectionsPerSecond is int perSecond and > 0
            ? new ConnectionRate(perSecond, effective.ConnectionsBurst ?? QuotaLimits.Defaults.ConnectionsBurst!.Value)
            : null;
}
