using Interceptor.Core.Attribution;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Decide;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Daemon.Commands;

/// <summary>What every verb needs from a configuration: the options and the nft table they describe.</summary>
public static class DaemonSetup
{
    /// <summary>
    /// <paramref name="relays"/>: the command relays mail (run), so an unset Relay.HeloName is resolved to this host's
    /// name; the others (check-config, rules, remove-rules) do no DNS lookup at all.
    /// </summary>
    /// <param name="configPath">The configuration file; null for the built-in defaults.</param>
    /// <param name="relays">Resolve an unset Relay.HeloName.</param>
    /// <param name="daemonUid">The daemon's uid, exempt in the table; null for this process's (see <see cref="DaemonAccount"/>).</param>
    public static (InterceptorOptions Options, RulesetSpec Spec) Load(string? configPath, bool relays = false, uint? daemonUid = null)
    {
        var options = ConfigurationLoader.Load(configPath, hostName: relays ? HostName.Resolve : null);

        // Its problems (bad lines, unknown owners) are logged by the daemon's own reader of the file, once.
        var subordinates = new SubordinateUidFile(SubordinateUidFile.DefaultPath, NullLogger.Instance).Current;
        var spec = SpecFor(options, subordinates, daemonUid);
        return (options, spec);
    }

    /// <summary>
    /// The uids of a list of users in the configuration: a name from the user database first, else a number as a uid; any
    /// other entry is an error naming <paramref name="key"/> and its index.
    /// </summary>
    private static IEnumerable<uint> UidsOf(IReadOnlyList<string> names, string key, List<string> errors)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (UserDatabase.UidOfNameOrNumber(names[i]) is { } uid)
            {
                yield return uid;
            }
            else
            {
                errors.Add($"{key}[{i}]: {UserDatabase.NoSuchUser(names[i])}");
            }
        }
    }

    /// <summary>
    /// The nft table a configuration describes: Netfilter renders this spec and knows nothing of the options. Resolves
    /// the exempt users through the system's user database and always adds our own UID (without it the daemon's own
    /// upstream connections would be redirected back to itself). <paramref name="subordinates"/>: the ranges of
    /// /etc/subuid, which the connection rate keeps out of its per-uid meter (none when null).
    /// </summary>
    public static RulesetSpec SpecFor(InterceptorOptions options, SubordinateUidMap? subordinates = null, uint? daemonUid = null)
    {
        var errors = new List<string>();
        var ours = daemonUid ?? UserDatabase.EffectiveUid;
        var uids = new List<uint> { ours };
        uids.AddRange(UidsOf(options.Interception.ExemptUsers, "Interception.ExemptUsers", errors));

        var routes = new List<AllowedRoute>();
        foreach (var (user, destinations) in options.Routes.Users)
        {
            if (UserDatabase.UidOf(user) is not { } uid)
            {
                errors.Add($"Routes.Users.{user}: no such user \"{user}\" in the user database");
                continue;
            }

            routes.AddRange(destinations.Select(d => System.Net.IPEndPoint.Parse(d)).Select(e => new AllowedRoute(uid, e.Address, e.Port)));
        }

        // Root and Metrics.ScraperUsers: the kernel lets only them reach the metrics endpoint, which keeps two of its
        // connections for them.
        List<uint> scrapers = [0, .. UidsOf(options.Metrics.ScraperUsers, "Metrics.ScraperUsers", errors)];
        var userRates = ConnectionRates.PerUser(options.Limits, errors);
        if (errors.Count > 0)
        {
            throw new ConfigurationException(errors);
        }

        try
        {
            var spec = new RulesetSpec(options.Interception.Table, options.Listen.Port, [.. options.Interception.Ports], uids)
            {
                BlockedPorts = options.Interception.BlockedPorts,
                AllowedRoutes = routes,
                StrayLogGroup = (ushort)options.Interception.StrayLogGroup,
                DefaultConnectionRate = ConnectionRates.Default(options.Limits),
                UserConnectionRates = userRates,
                SubordinateUidRanges = subordinates is null ? [] : SuspendedUidSets.OwnedRanges(subordinates),
                MetricsEndpoint = options.Metrics.Listen.Length == 0 ? null : System.Net.IPEndPoint.Parse(options.Metrics.Listen),
                MetricsUids = options.Metrics.Listen.Length == 0 ? [] : scrapers,
                MetricsServerUid = options.Metrics.Listen.Length == 0 ? 0 : ours,
            };
            spec.EnsureConsistent();
            return spec;
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException([e.Message]);
        }
    }
}
