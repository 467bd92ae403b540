namespace Interceptor.Daemon.Commands;

/// <summary>What a verb's handler gets from the parsed command line (see <see cref="CommandLineDefinition"/>).</summary>
/// <param name="Verb">The verb, e.g. "run" or "status".</param>
/// <param name="ConfigPath">--config, or the packaged file when it exists; null means the built-in defaults ({}).</param>
/// <param name="Json">--json (admin verbs only).</param>
/// <param name="DaemonUser">--daemon-user (check-config and rules only): the user to check or render for; see <see cref="DaemonAccount"/>.</param>
/// <param name="DaemonGroups">--daemon-groups (check-config only): groups the daemon runs in besides its user's own.</param>
/// <param name="DaemonSandbox">--daemon-sandbox (check-config only): the unit's ProtectHome= and PrivateTmp=.</param>
/// <param name="DaemonGroup">--daemon-group (check-config only): the daemon's primary group instead of its user's (Group=).</param>
public sealed record Arguments(
    string Verb, string? ConfigPath, bool Json, string? DaemonUser = null, string? DaemonGroups = null, string? DaemonSandbox = null, string? DaemonGroup = null)
{
    public const string DefaultConfigPath = "/etc/smtp-interceptor/smtp-interceptor.json";

    /// <summary>Without --config the packaged file is used when present; otherwise the built-in defaults ({}).</summary>
    public static string? ConfigOrDefault(string? config) => config ?? (File.Exists(DefaultConfigPath) ? DefaultConfigPath : null);
}
