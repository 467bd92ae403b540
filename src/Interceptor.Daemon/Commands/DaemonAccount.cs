using Interceptor.Linux;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The user a verb checks or renders for when it is not the daemon itself (check-config, rules): <c>--daemon-user NAME</c>;
/// else the package's account where it exists, whose units run the daemon and the boot table as it; else whoever runs
/// the verb. Root's own uid in a hand-made table would leave the daemon's upstream connections to the redirect, root
/// passes every file check the daemon's user would fail, and an admin in Control.AdminGroup must not be told to chown the
/// daemon's secrets to herself.
/// </summary>
/// <param name="Uid">The daemon's uid: exempt in the table, the owner its private files must have.</param>
/// <param name="Description">"uid 995 (smtp-interceptor)".</param>
/// <param name="InsteadOfCaller">True when asked without --daemon-user and the package's account is not the caller.</param>
public sealed record DaemonAccount(uint Uid, string Description, bool InsteadOfCaller)
{
    /// <summary>The account the Debian package creates and names in its units' <c>User=</c>.</summary>
    public const string PackagedName = "smtp-interceptor";

    /// <summary>The account for <c>--daemon-user</c> (<paramref name="requested"/>, null when not given).</summary>
    /// <exception cref="Configuration.ConfigurationException">--daemon-user names no account.</exception>
    public static DaemonAccount Resolve(string? requested) =>
        Resolve(requested, UserDatabase.EffectiveUid, UserDatabase.UidOf, UserDatabase.Describe);

    /// <summary><see cref="Resolve(string?)"/> with the lookups given (tests).</summary>
    public static DaemonAccount Resolve(string? requested, uint caller, Func<string, uint?> uidOf, Func<uint, string> describe)
    {
        ArgumentNullException.ThrowIfNull(uidOf);
        ArgumentNullException.ThrowIfNull(describe);
        if (requested is not null)
        {
            var uid = uidOf(requested) ?? (uint.TryParse(requested, out var number) ? number
                : throw new Configuration.ConfigurationException([$"--daemon-user: no such user \"{requested}\" in the user database"]));
            return new DaemonAccount(uid, describe(uid), InsteadOfCaller: false);
        }

        return uidOf(PackagedName) is { } packaged
            ? new DaemonAccount(packaged, describe(packaged), InsteadOfCaller: packaged != caller)
            : new DaemonAccount(caller, describe(caller), InsteadOfCaller: false);
    }
}
