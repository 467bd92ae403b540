using Interceptor.Core.Options;
using Interceptor.Daemon.Metrics;
using Interceptor.Linux;
using Interceptor.Daemon.Pool;
using Interceptor.Smtp.Tls;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Daemon.Configuration;

/// <summary>
/// The files a configuration names, opened as `run` will open them, so a missing, unreadable or malformed one is named by
/// its key before anything starts: check-config reports them all, run stops at start with the same text (exit 1) instead
/// of failing inside a listener being built.
/// </summary>
internal static class ReferencedFiles
{
    /// <summary>Every problem, one line each, naming the key: the credentials file, the metrics token, each relay's CaFile, the client CA.</summary>
    public static IReadOnlyList<string> Problems(InterceptorOptions options) => Problems(options, UserDatabase.EffectiveUid);

    /// <inheritdoc cref="Problems(InterceptorOptions)"/>
    /// <param name="options">The configuration.</param>
    /// <param name="daemonUid">The user the daemon will run as: the private files must be its own (check-config --daemon-user).</param>
    public static IReadOnlyList<string> Problems(InterceptorOptions options, uint daemonUid)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = new List<string>();
        try
        {
            DaemonPool.LoadCredentials(options.Relay, daemonUid);
        }
        catch (ConfigurationException e)
        {
            problems.AddRange(e.Errors);
        }

        try
        {
            MetricsToken.Load(options.Metrics, daemonUid);
        }
        catch (ConfigurationException e)
        {
            problems.AddRange(e.Errors);
        }

        problems.AddRange(SmarthostCaProblems(options.Relay));
        try
        {
            using var clientTls = ClientTlsServer.From(options.ClientTls);
        }
        catch (ClientTlsSetupException e)
        {
            problems.Add(e.Message);
        }

        return problems;
    }

    /// <summary>Each relay's CaFile that cannot be read or holds no PEM certificate (Tls Required is the only policy that uses it).</summary>
    public static IReadOnlyList<string> SmarthostCaProblems(RelayOptions relay)
    {
        var problems = new List<string>();
        for (var i = 0; i < relay.Smarthosts.Count; i++)
        {
            var host = relay.Smarthosts[i];
            if (host.CaFile.Length == 0 || host.Tls != SmarthostTls.Required)
            {
                continue;
            }

            try
            {
                UpstreamTlsVerification.LoadRoots(host.CaFile);
            }
            catch (InvalidOperationException e)
            {
                problems.Add($"Relay.Smarthosts[{i}].CaFile: {e.Message}");
            }
        }

        return problems;
    }
}
