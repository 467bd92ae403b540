using System.Globalization;
using Interceptor.Linux;

namespace Interceptor.Daemon.Control;

/// <summary>
/// Who may use the control socket: root, and members of Control.AdminGroup. The socket file's mode (0660, group =
/// the admin group) already keeps others from connecting; this check is the one that cannot be loosened by a chmod,
/// because it reads the peer's uid from the kernel (SO_PEERCRED) and that user's groups from the user and group
/// databases. The gid the kernel reports is not asked: a customer allowed sub-GIDs (/etc/subgid) takes any gid of her
/// range in a user namespace, and the socket file's group permission with it, so an admin group whose gid falls in a
/// range would have admitted her.
/// </summary>
public sealed class PeerAuthorization
{
    private readonly Func<uint, IReadOnlyCollection<uint>> _groupsOf;

    /// <param name="groupName">Control.AdminGroup as configured ("" for root only).</param>
    /// <param name="adminGid">Its gid, or null for root only.</param>
    /// <param name="groupsOf">A uid's groups in the databases: its passwd entry's primary gid and every group listing it.</param>
    public PeerAuthorization(string groupName, uint? adminGid, Func<uint, IReadOnlyCollection<uint>> groupsOf)
    {
        GroupName = groupName;
        AdminGid = adminGid;
        _groupsOf = groupsOf;
    }

    public string GroupName { get; }

    public uint? AdminGid { get; }

    /// <summary>The text a refused peer gets, and the CLI prints when the socket file itself refuses it.</summary>
    public string DenialMessage => DenialFor(AdminGid is null ? "" : GroupName);

    public static string DenialFor(string adminGroup) => adminGroup.Length == 0
        ? "permission denied: only root may use the control socket (set Control.AdminGroup to admit a group)"
        : $"permission denied: only root and members of group {adminGroup} may use the control socket";

    /// <summary>Resolves Control.AdminGroup (a name, or a numeric gid) through the group database.</summary>
    /// <exception cref="ControlSocketException">No such group: the configuration names a group that does not exist.</exception>
    public static PeerAuthorization ForGroup(string adminGroup)
    {
        ArgumentNullException.ThrowIfNull(adminGroup);
        if (adminGroup.Length == 0)
        {
            return new PeerAuthorization("", null, DatabaseGroups);
        }

        uint? gid;
        try
        {
            gid = UnixGroups.GidOf(adminGroup)
                ?? (uint.TryParse(adminGroup, NumberStyles.None, CultureInfo.InvariantCulture, out var numeric) ? numeric : null);
        }
        catch (LinuxInteropException e)
        {
            throw new ControlSocketException($"Control.AdminGroup: cannot look up group \"{adminGroup}\": {e.Message}", e);
        }

        return gid is null
            ? throw new ControlSocketException($"Control.AdminGroup: no such group \"{adminGroup}\" in the group database")
            : new PeerAuthorization(adminGroup, gid, DatabaseGroups);
    }

    /// <summary>
    /// The decision itself: root, or the admin gid is one of the user's groups in the databases.
    /// Without an admin group only root is admitted.
    /// </summary>
    public static bool Admits(uint uid, IReadOnlyCollection<uint> groups, uint? adminGid)
    {
        ArgumentNullException.ThrowIfNull(groups);
        return uid == 0 || (adminGid is { } admin && groups.Contains(admin));
    }

    /// <summary>Decides for a connected peer; a database failure denies (fail closed).</summary>
    public bool Admits(PeerCredentials peer)
    {
        // Root decides without asking the databases (NSS may be slow or down); nobody else does.
        if (Admits(peer.Uid, [], AdminGid))
        {
            return true;
        }

        if (AdminGid is null)
        {
            return false;
        }

        try
        {
            return Admits(peer.Uid, _groupsOf(peer.Uid), AdminGid);
        }
        catch (LinuxInteropException)
        {
            return false;
        }
    }

    /// <summary>
    /// The groups the databases give the peer's user: its passwd entry's primary gid and every group listing it. None when
    /// the uid has no entry (a sub-UID, or nobody's): it belongs to no group.
    /// </summary>
    private static IReadOnlyCollection<uint> DatabaseGroups(uint uid) =>
        UserDatabase.AccountOf(uid) is { } account ? [.. UnixGroups.GroupsOf(account.Name, account.Gid)] : [];
}

/// <summary>The control socket could not be set up; the message says what to fix.</summary>
public sealed class ControlSocketException : Exception
{
    public ControlSocketException()
    {
    }

    public ControlSocketException(string message)
        : base(message)
    {
    }

    public ControlSocketException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
