using Interceptor.Core.Options;
using Interceptor.Core.Text;
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
    /// client CA; for a check made for another user, also what that user may not reach or read.
    /// </summary>
    public static IReadOnlyList<string> Problems(InterceptorOptions options) => Problems(options, UserDatabase.EffectiveUid);

    /// <inheritdoc cref="Problems(InterceptorOptions)"/>
    /// <param name="options">The configuration.</param>
    /// <param name="daemonUid">The user the daemon will run as: the private files must be its own (check-config --daemon-user).</param>
    /// <param name="daemonGroups">Groups it runs in besides those the databases give it (check-config --daemon-groups: a unit's SupplementaryGroups=).</param>
    /// <param name="hidden">Directories the daemon's unit hides from it or gives it its own of (<see cref="HiddenBy"/>).</param>
    /// <param name="daemonGroup">Its primary group instead of its user's (check-config --daemon-group: a unit's Group=).</param>
    public static IReadOnlyList<string> Problems(
        InterceptorOptions options, uint daemonUid, IReadOnlyCollection<uint>? daemonGroups = null, IReadOnlyList<string>? hidden = null, uint? daemonGroup = null)
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
            problems.AddRange(UnreadableByTheDaemon(options, daemonUid, daemonGroups, daemonGroup));
        }

        if (hidden is { Count: > 0 })
        {
            problems.AddRange(HiddenFromTheDaemon(options, hidden));
        }

        return problems;
    }

    /// <summary>
    /// A check made for another user (check-config --daemon-user, as root) read the files above as itself: those the
    /// daemon's user may not reach or read, from the owners, groups and modes of the directories on their paths and of
    /// the files. A secret's own owner and mode are its reader's (above). Missing files are named above.
    /// </summary>
    private static IEnumerable<string> UnreadableByTheDaemon(InterceptorOptions options, uint daemonUid, IReadOnlyCollection<uint>? daemonGroups, uint? daemonGroup)
    {
        if (UserAccess.For(daemonUid, daemonGroups, daemonGroup) is not { } access)
        {
            yield break;
        }

        var user = $"the daemon's user ({UserDatabase.Describe(daemonUid)})";
        var owner = UserDatabase.NameForMessage(daemonUid) ?? daemonUid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (key, path, kind) in FilesTheDaemonReads(options))
        {
            if (access.SearchBarrier(path) is { } barrier)
            {
                yield return $"{key}: {path}: {user} may not search {barrier}; it must be able to search every directory on the path (let it search that one, or move the file)";
            }
            else if (kind != FileKind.Secret && access.ReadDenied(path) is { } denied)
            {
                var wanted = kind == FileKind.Public ? "make it readable by all (mode 0644)" : $"give it owner {owner} and mode 0600";
                yield return $"{key}: {path}: {user} may not read it ({denied}); {PathCustody.Fix(path, ReadFix(path, kind, daemonUid, owner), wanted, daemonUid)}";
            }
        }
    }

    /// <summary>
    /// The directories a unit's sandbox hides from the daemon or gives it its own of, from its settings as systemctl show
    /// prints them ("ProtectHome=yes PrivateTmp=yes", check-config --daemon-sandbox): ProtectHome= yes or tmpfs hides
    /// /home, /root and /run/user (read-only leaves them readable); PrivateTmp= yes or disconnected (newer systemd) gives
    /// it its own /tmp and /var/tmp.
    /// </summary>
    public static IReadOnlyList<string> HiddenBy(string? settings)
    {
        var hidden = new List<string>();
        foreach (var setting in (settings ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            switch (setting)
            {
                case "ProtectHome=yes" or "ProtectHome=tmpfs":
                    hidden.AddRange(["/home", "/root", "/run/user"]);
                    break;
                case "PrivateTmp=yes" or "PrivateTmp=disconnected":
                    hidden.AddRange(["/tmp", "/var/tmp"]);
                    break;
            }
        }

        return hidden;
    }

    /// <summary>
    /// The files the daemon reads at start that its unit hides from it: what root finds in /tmp, /home or /root, the
    /// daemon does not (its own /tmp, ProtectHome=). Judged where the kernel's lookup leads, so a link in /etc into /tmp
    /// counts, and a file there that root cannot find is named by its reader above.
    /// </summary>
    private static IEnumerable<string> HiddenFromTheDaemon(InterceptorOptions options, IReadOnlyList<string> hidden)
    {
        foreach (var (key, path, _) in FilesTheDaemonReads(options))
        {
            var searched = UserAccess.DirectoriesSearched(path);
            if (hidden.FirstOrDefault(h => searched.Any(d => d == h || d.StartsWith(h + "/", StringComparison.Ordinal))) is { } directory)
            {
                yield return $"{key}: {path}: is under {directory}, which the daemon's unit hides from it or gives it its own of (ProtectHome=, PrivateTmp=); keep it under /etc/smtp-interceptor";
            }
        }
    }

    // The files the daemon opens at start, and whether each is a secret (its reader names owner and mode) or the CA's
    // key (the daemon's user's alone). Domains.File is not among them: an unreadable map is logged and the daemon starts.
    private static IEnumerable<(string Key, string Path, FileKind Kind)> FilesTheDaemonReads(InterceptorOptions options)
    {
        if (options.Relay.CredentialsFile.Length > 0)
        {
            yield return ("Relay.CredentialsFile", options.Relay.CredentialsFile, FileKind.Secret);
        }

        if (options.Metrics.BearerTokenFile.Length > 0)
        {
            yield return ("Metrics.BearerTokenFile", options.Metrics.BearerTokenFile, FileKind.Secret);
        }

        for (var i = 0; i < options.Relay.Smarthosts.Count; i++)
        {
            if (options.Relay.Smarthosts[i] is { Tls: SmarthostTls.Required, CaFile.Length: > 0 } host)
            {
                yield return ($"Relay.Smarthosts[{i}].CaFile", host.CaFile, FileKind.Public);
            }
        }

        if (options.ClientTls.Mode == ClientTlsMode.Mint)
        {
            yield return ("ClientTls.CaCertificate", options.ClientTls.CaCertificate, FileKind.Public);
            yield return ("ClientTls.CaKey", options.ClientTls.CaKey, FileKind.Key);
        }
    }

    private enum FileKind
    {
        Secret,
        Public,
        Key,
    }

    // What lets the daemon's user read a file its mode shuts it out of. The key must stay that user's alone: its own key
    // wants its mode, another's a chown.
    private static string ReadFix(string path, FileKind kind, uint daemonUid, string owner)
    {
        if (kind == FileKind.Public)
        {
            return $"chmod a+r {ShellWord.Quote(path)}";
        }

        try
        {
            return DurableFiles.OwnerOf(path) == daemonUid ? $"chmod 600 {ShellWord.Quote(path)}" : $"chown {ShellWord.Quote(owner)} {ShellWord.Quote(path)}";
        }
        catch (IOException)
        {
            return $"chown {ShellWord.Quote(owner)} {ShellWord.Quote(path)}";
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
