using Interceptor.Core.Options;

namespace Interceptor.Daemon.Configuration;

/// <summary>The relay pool's one rule in the loader while the pool is not wired (issue 15).</summary>
public static partial class ConfigurationLoader
{
    /// <summary>
    /// Until the relay path acts on the pool, Smarthost or Auto would be accepted and then silently ignored (mail sent
    /// direct from the host's address, what the pool exists to avoid): the daemon refuses them. The pool's own keys are
    /// <see cref="NotActiveYetAttribute">not keys yet</see>, so only <c>Relay.Mode</c> can name them. Remove when wired.
    /// </summary>
    private static IEnumerable<string> PoolModesNotYetWired(InterceptorOptions options) =>
        options.Relay.ModeByUser.Values.Append(options.Relay.Mode).All(m => m == RelayMode.OriginalDestination)
            ? []
            : ["Relay.Mode: Smarthost and Auto are not available in this build yet (the relay pool is not wired into the relay path); use OriginalDestination"];
}
