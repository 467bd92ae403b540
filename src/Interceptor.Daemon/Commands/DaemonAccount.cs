using Interceptor.Linux;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The user a verb checks or renders for (check-config, rules): <c>--daemon-user NAME</c>; else the caller when it holds
/// CAP_NET_ADMIN, as the units give their <c>User=</c> (the boot table's unit renders for whoever it runs as, a drop-in's
/// user too); else the package's account where it exists; else the caller. So root's own uid is not rendered into a table
/// made by hand (the daemon's upstream connections would be left to the redirect), root does not pass file checks the
/// daemon's user would fail, and an admin in Control.AdminGroup is not told to chown the daemon's secrets to herself.
/// </summary>
/// <param name="Uid">The daemon's uid: exempt in the table, the owner its private files must have.</param>
/// <param name="Description">"uid 995 (smtp-interceptor)".</param>
/// <param name="InsteadOfCaller">True when asked without --daemon-user and the account chosen is not the caller.</param>
public sealed record DaemonAccount(uint Uid, string Description, bool InsteadOfCaller)
{
    /// <summary>The account the Debian package creates and names in its units' <c>User=</c>.</summary>
    public const string PackagedName = "smtp-interceptor";
    private const uint NobodyGid = 65534;

    /// <summary>The account for <c>--daemon-user</c> (<paramref name="requested"/>, null when not given).</summary>
    /// <exception cref="Configuration.ConfigurationException">--daemon-user names no account.</exception>
    public static DaemonAccount Resolve(string? requested) => Resolve(
        requested,
        UserDatabase.EffectiveUid,
        UserDatabase.EffectiveUid != 0 && ProcessCapabilities.HasEffective(ProcessCapabilities.NetAdmin),
        UserDatabase.UidOfNameOrNumber,
        UserDatabase.Describe);

    /// <summary><see cref="Resolve(string?)"/> with the caller and the lookups given (tests).</summary>
    /// <param name="requested">--daemon-user, null when not given.</param>
    /// <param name="caller">The uid running the verb.</param>
    /// <param name="callerIsAService">The caller is not root and holds CAP_NET_ADMIN, as a unit's <c>User=</c> does.</param>
    /// <param name="uidOf">The uid of a user's name, or of a uid in digits.</param>
    /// <param name="describe">"uid N (name)".</param>
    public static DaemonAccount Resolve(string? requested, uint caller, bool callerIsAService, Func<string, uint?> uidOf, Func<uint, string> describe)
    {
        ArgumentNullException.ThrowIfNull(uidOf);
        ArgumentNullException.ThrowIfNull(describe);
        if (requested is not null)
        {
            var uid = uidOf(requested) ?? throw new Configuration.ConfigurationException([$"--daemon-user: {UserDatabase.NoSuchUser(requested)}"]);
            return new DaemonAccount(uid, describe(uid), InsteadOfCaller: false);
        }

        return !callerIsAService && uidOf(PackagedName) is { } packaged
            ? new DaemonAccount(packaged, describe(packaged), InsteadOfCaller: packaged != caller)
            : new DaemonAccount(caller, describe(caller), InsteadOfCaller: false);
    }

    /// <summary>
    /// The gids of <c>--daemon-groups</c>: names from the group database or gids in digits, separated by spaces or commas
    /// (systemd prints SupplementaryGroups= with spaces); empty when not given. A group the database does not have, or a
    /// group database that cannot be read, is a problem: systemd would not start a unit naming it either.
    /// </summary>
    public static (IReadOnlyList<uint> Gids, IReadOnlyList<string> Problems) GroupsNamed(string? list)
    {
        var gids = new List<uint>();
        var problems = new List<string>();
        foreach (var name in (list ?? "").Split([' ', ','], StringSplitOptions.RemoveEmptyEntries))
        {
            if (Resolve("--daemon-groups", name, problems) is { } gid)
            {
                gids.Add(gid);
            }
        }

        return (gids, problems);
    }

    /// <summary>
    /// The gid of <c>--daemon-group</c>, a unit's Group= as systemctl show prints it (one name or gid, taken whole: a
    /// relaxed group name may hold a space); null when empty, as for a unit that sets none. Problems as for
    /// <see cref="GroupsNamed(string?)"/>.
    /// </summary>
    public static (uint? Gid, IReadOnlyList<string> Problems) PrimaryGroupNamed(string? name)
    {
        var group = (name ?? "").Trim();
        var problems = new List<string>();
        return (group.Length == 0 ? null : Resolve("--daemon-group", group, problems), problems);
    }

    private static uint? Resolve(string option, string name, List<string> problems)
    {
        try
        {
            if (GidOfNameOrNumber(name) is { } gid)
            {
                return gid;
            }

            problems.Add($"{option}: no such group \"{name}\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)");
        }
        catch (LinuxInteropException e)
        {
            problems.Add($"{option}: the group database could not be read for \"{name}\" ({e.Message})");
        }

        return null;
    }

    // A group's gid from its name, else from digits alone (written as a uid is; (gid_t)-1 is no group). systemd refuses a
    // gid the database does not have, as it does a name, except root's and nobody's, which it knows without one.
    private static uint? GidOfNameOrNumber(string name) =>
        UnixGroups.GidOf(name)
        ?? (UserDatabase.ParseUid(name) is { } gid && (gid is 0 or NobodyGid || UnixGroups.Exists(gid)) ? gid : null);
}
