using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Interceptor.Linux;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Commands;

/// <summary>What every verb needs from a configuration: the options and the nft table they describe.</summary>
public static class DaemonSetup
{
    public static (InterceptorOptions Options, RulesetSpec Spec) Load(string? configPath)
    {
        var options = ConfigurationLoader.Load(configPath);
        return (options, SpecFor(options));
    }

    /// <summary>Resolves the exempt users through the system's user database and always adds our own UID.</summary>
    public static RulesetSpec SpecFor(InterceptorOptions options)
    {
        var errors = new List<string>();
        var uids = new List<uint> { UserDatabase.EffectiveUid };
        for (var i = 0; i < options.Interception.ExemptUsers.Count; i++)
        {
            var name = options.Interception.ExemptUsers[i];
            if (UserDatabase.UidOf(name) is { } uid)
            {
                uids.Add(uid);
            }
            else if (uint.TryParse(name, out var numeric))
            {
                uids.Add(numeric);
            }
            else
            {
                errors.Add($"Interception.ExemptUsers[{i}]: no such user \"{name}\" in the user database");
            }
        }

        if (errors.Count > 0)
        {
            throw new ConfigurationException(errors);
        }

        return RulesetSpec.FromOptions(options, uids);
    }
}
