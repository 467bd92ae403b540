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
    /// <summary>
    /// Every problem, one line each, naming the key: the credentials file, the metrics token, each relay's CaFile, the
    /// client CA, and for a check made for another user, the domains map too.
    /// </summary>
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

        if (daemonUid != UserDatabase.EffectiveUid)
        {
            problems.AddRange(UnreadableByTheDaemon(options, daemonUid));
        }

        return problems;
    }

    /// <summary>
    /// A check made for another user (check-config --daemon-user, as root) read the files above as itself: those that
    /// are not secrets (a secret file's reader judges its own directories) but that the daemon's user may not reach or
    /// read, from their directories', owners' and modes' word. Missing files are named above.
    /// </summary>
    private static IEnumerable<string> UnreadableByTheDaemon(InterceptorOptions options, uint daemonUid)
    {
        var read = new List<(string Key, string Path)>();
        for (var i = 0; i < options.Relay.Smarthosts.Count; i++)
        {
            if (options.Relay.Smarthosts[i] is { Tls: SmarthostTls.Required, CaFile.Length: > 0 } host)
            {
                read.Add(($"Relay.Smarthosts[{i}].CaFile", host.CaFile));
            }
        }

        if (options.ClientTls.Mode == ClientTlsMode.Mint)
        {
            read.Add(("ClientTls.CaCertificate", options.ClientTls.CaCertificate));
            read.Add(("ClientTls.CaKey", options.ClientTls.CaKey));
        }

        if (options.Domains is { Source: DomainSource.File, File.Length: > 0 })
        {
            read.Add(("Domains.File", options.Domains.File));
        }

        foreach (var (key, path) in read)
        {
            if (UserAccess.Unreadable(path, daemonUid) is { } why)
            {
                yield return $"{key}: {path}: the daemon's user ({UserDatabase.Describe(daemonUid)}) {why}";
            }
        }
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
