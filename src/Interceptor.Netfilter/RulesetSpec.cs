using System.Collections.ObjectModel;
using System.Text;
using Interceptor.Core.Attribution;

namespace Interceptor.Netfilter;

/// <summary>
/// Everything that decides the content of our nftables table, already resolved to numbers.
/// Ports, UIDs and routes are kept sorted and distinct whichever way the record is built (constructor,
/// object initializer or <c>with</c>), so the rendered script is deterministic and two equal specs compare equal.
/// The suspension, blocked-port and route lists are optional and empty by default.
/// </summary>
public sealed partial record RulesetSpec(string Table, int ListenPort, IReadOnlyList<int> Ports, IReadOnlyList<uint> ExemptUids)
{
    /// <summary>The NAT chain that redirects; the verifier and the admin guide refer to it by this name.</summary>
    public const string ChainName = "output_nat";

    /// <summary>The NAT chain (same as <see cref="ChainName"/>).</summary>
    public const string NatChainName = ChainName;

    /// <summary>
    /// The filter chain that refuses suspended users and blocked ports. It runs before <see cref="NatChainName"/>
    /// (priority -150 against -100): later, the packet would already be rewritten to the listener's address.
    /// </summary>
    public const string FilterChainName = "output_filter";

    /// <summary>The named set of UIDs whose connections are left alone.</summary>
    public const string ExemptSetName = "exempt_uids";

    /// <summary>The named set of suspended UIDs, whose connections to the intercepted ports the kernel refuses.</summary>
    public const string SuspendedSetName = "suspended_uids";

    /// <summary>
    /// The named interval set of the subordinate uids (/etc/subuid) of the suspended users, refused like them. A set of
    /// its own, so <see cref="SuspendedSetName"/> still lists exactly the suspended users.
    /// </summary>
    public const string SuspendedSubordinateSetName = "suspended_subuids";

    /// <summary>The named set of <c>uid . ipv4_addr . inet_service</c> that go out directly.</summary>
    public const string AllowedRoutesV4SetName = "allowed_routes_v4";

    /// <summary>The named set of <c>uid . ipv6_addr . inet_service</c> that go out directly.</summary>
    public const string AllowedRoutesV6SetName = "allowed_routes_v6";

    /// <summary>
    /// The dynamic set behind the default connection rate: one token bucket per uid, created by the first SYN of a uid
    /// and forgotten a minute after its last (a full bucket again by then).
    /// </summary>
    public const string RateLimitMeterSetName = "ratelimit_meter";

    /// <summary>The named set of the uids with a connection rate of their own: the default meter leaves them alone.</summary>
    public const string RateLimitUsersSetName = "ratelimit_own_users";

    /// <summary>
    /// The named interval set of every subordinate uid range (/etc/subuid) while connection rates are on: the meter rule
    /// leaves them out, so only real uids (which only root can create) can fill the meter; each owner's ranges have a
    /// rule and a bucket of their own instead.
    /// </summary>
    public const string RateLimitSubordinateSetName = "ratelimit_subuids";

    /// <summary>The named counter of connections the default rate refused; a user's own rate has <c>ratelimit_refused_uidN</c>.</summary>
    public const string RateLimitCounterName = "ratelimit_refused";

    /// <summary>What the guard table's name adds to <see cref="Table"/>.</summary>
    public const string GuardSuffix = "_guard";

    /// <summary>
    /// The guard table's only chain: a filter at priority 0, after the redirect, that refuses whatever is still
    /// aimed at an intercepted or blocked port, i.e. what the main table did not redirect (deleted or flushed).
    /// </summary>
    public const string GuardChainName = "output_guard";

    /// <summary>The prefix of the packets the guard's SYN refusal logs (<see cref="StrayLogGroup"/>).</summary>
    public const string StraySynLogPrefix = "smtp-interceptor stray-syn";

    /// <summary>The prefix of the packets the guard's drop of invalid and untracked packets logs.</summary>
    public const string StrayPacketLogPrefix = "smtp-interceptor stray-packet";

    /// <summary>The guard table that belongs to <paramref name="table"/>; installed, verified and removed with it.</summary>
    public static string GuardTableFor(string table) => NftNames.CheckConfiguredTable(table) + GuardSuffix;

    /// <summary>The guard table (see <see cref="GuardChainName"/>).</summary>
    public string GuardTable => Table + GuardSuffix;

    /// <summary>
    /// The table name is pasted into an nft script, so it must be a plain identifier: a newline or a brace
    /// would let the configuration inject commands into a ruleset applied as root.
    /// </summary>
    public string Table { get; init => field = NftNames.CheckConfiguredTable(value); } = NftNames.CheckConfiguredTable(Table);

    public int ListenPort { get; init => field = CheckPort(value, nameof(ListenPort)); } = CheckPort(ListenPort, nameof(ListenPort));

    public IReadOnlyList<int> Ports { get; init => field = NormalizePorts(value); } = NormalizePorts(Ports);

    public IReadOnlyList<uint> ExemptUids { get; init => field = NormalizeUids(value); } = NormalizeUids(ExemptUids);

    /// <summary>
    /// Suspended users: the kernel refuses their connections to the intercepted ports (TCP reset) before they
    /// reach the daemon. A running daemon changes the set with <see cref="RulesetManager.SuspendAsync"/> and
    /// <see cref="RulesetManager.UnsuspendAsync"/>; an install replaces it with this list.
    /// An exempt UID listed here is not refused: the exempt rule comes first.
    /// </summary>
    public IReadOnlyList<uint> SuspendedUids { get; init => field = NormalizeUids(value); } = [];

    /// <summary>
    /// The subordinate uid ranges of the suspended users: the kernel refuses them like <see cref="SuspendedUids"/>.
    /// Kept sorted with overlapping and adjacent ranges merged. An exempt uid inside a range is still not refused.
    /// </summary>
    public IReadOnlyList<UidRange> SuspendedUidRanges { get; init => field = UidRange.Merge(value ?? throw new ArgumentNullException(nameof(value))); } = [];

    /// <summary>
    /// Ports refused to every non-exempt user (for example 465, whose implicit TLS cannot be intercepted).
    /// They must not be intercepted ports nor the listener port.
    /// </summary>
    public IReadOnlyList<int> BlockedPorts { get; init => field = NormalizeBlockedPorts(value); } = [];

    /// <summary>Destinations (uid . address . port) that go out directly instead of being redirected; IPv4 and IPv6.</summary>
    public IReadOnlyList<AllowedRoute> AllowedRoutes { get; init => field = NormalizeRoutes(value); } = [];

    /// <summary>
    /// The lockdown form (issue 12.1): the table without its redirects, used whenever the daemon cannot own the listener
    /// port (another socket holds it, or unprivileged users may bind it). Intercepted connections of non-exempt users
    /// are then refused by the guard table instead of being handed to whoever listens on the port.
    /// </summary>
    public bool Lockdown { get; init; }

    /// <summary>
    /// The kernel's connection rate for every non-exempt user without a rate of their own (one bucket per real uid; the
    /// sub-UIDs of an owner share one, see <see cref="SubordinateConnectionRates"/>); null: off. Over it, new connections to the intercepted ports get a TCP reset.
    /// </summary>
    public ConnectionRate? DefaultConnectionRate { get; init; }

    /// <summary>Users with a connection rate of their own (or none, <see cref="UidConnectionRate.Rate"/> null), sorted by uid.</summary>
    public IReadOnlyList<UidConnectionRate> UserConnectionRates { get; init => field = NormalizeRates(value); } = [];

    /// <summary>
    /// The subordinate uid ranges of /etc/subuid with their owners (empty without the file). Used only while connection
    /// rates are on (<see cref="SubordinateConnectionRates"/>); kept sorted and distinct.
    /// </summary>
    public IReadOnlyList<OwnedUidRange> SubordinateUidRanges { get; init => field = NormalizeOwnedRanges(value); } = [];

    /// <summary>
    /// Per owner of sub-UIDs: its ranges, merged, and the rate they share (the owner's own rate if it has one, else the
    /// default); empty when the table limits no connection rate.
    /// </summary>
    public IReadOnlyList<SubordinateConnectionRate> SubordinateConnectionRates =>
        !LimitsConnectionRate
            ? []
            : [.. SubordinateUidRanges.GroupBy(r => r.Owner).OrderBy(g => g.Key).Select(g => new SubordinateConnectionRate(
                g.Key, UidRange.Merge(g.Select(r => r.Range)), UserConnectionRates.FirstOrDefault(r => r.Uid == g.Key) is { } own ? own.Rate : DefaultConnectionRate))];

    /// <summary>
    /// The NFLOG group the guard's two stray-packet rules log each packet to (<c>log group N</c>), so the daemon can name
    /// the user behind it; 0: they only count. The kernel sends the packet's owning uid with it.
    /// </summary>
    public ushort StrayLogGroup { get; init; }

    /// <summary>Whether the table limits connection rates at all; without, it holds none of the rate-limit objects.</summary>
    public bool LimitsConnectionRate => DefaultConnectionRate is not null || UserConnectionRates.Count > 0;

    /// <summary>
    /// Checks what a single property cannot: the listener port must not itself be intercepted,
    /// or connections to the listener would be redirected onto themselves; a blocked port can be neither
    /// intercepted nor the listener's; and a route to a blocked port could never be used (the kernel refuses
    /// blocked ports before routes apply), so it is refused rather than silently ignored.
    /// </summary>
    public void EnsureConsistent()
    {
        if (Ports.Contains(ListenPort))
        {
            throw new ArgumentException(
                $"Listen.Port {ListenPort} is also in Interception.Ports; the listener port must not be intercepted.",
                nameof(ListenPort));
        }

        var interceptedAndBlocked = BlockedPorts.Where(Ports.Contains).ToList();
        if (interceptedAndBlocked.Count > 0)
        {
            throw new ArgumentException(
                $"Port(s) {string.Join(", ", interceptedAndBlocked)} are both in Interception.Ports and Interception.BlockedPorts; a port is either intercepted or blocked.",
                nameof(BlockedPorts));
        }

        if (BlockedPorts.Contains(ListenPort))
        {
            throw new ArgumentException(
                $"Listen.Port {ListenPort} is also in Interception.BlockedPorts; the listener port must not be blocked.",
                nameof(BlockedPorts));
        }

        EnsureMetricsPortFree();
        var blockedRoute = AllowedRoutes.FirstOrDefault(r => BlockedPorts.Contains(r.Port));
        if (blockedRoute is not null)
        {
            throw new ArgumentException(
                $"The allowed route {blockedRoute} (uid . address . port) goes to port {blockedRoute.Port}, which is in Interception.BlockedPorts; "
                + "blocked ports are refused to every non-exempt user, so the route could never be used.",
                nameof(AllowedRoutes));
        }
    }

    public bool Equals(RulesetSpec? other) =>
        other is not null
        && string.Equals(Table, other.Table, StringComparison.Ordinal)
        && ListenPort == other.ListenPort
        && Ports.SequenceEqual(other.Ports)
        && ExemptUids.SequenceEqual(other.ExemptUids)
        && SuspendedUids.SequenceEqual(other.SuspendedUids)
        && SuspendedUidRanges.SequenceEqual(other.SuspendedUidRanges)
        && BlockedPorts.SequenceEqual(other.BlockedPorts)
        && AllowedRoutes.SequenceEqual(other.AllowedRoutes)
        && Lockdown == other.Lockdown
        && StrayLogGroup == other.StrayLogGroup
        && Equals(DefaultConnectionRate, other.DefaultConnectionRate)
        && UserConnectionRates.SequenceEqual(other.UserConnectionRates)
        && SubordinateUidRanges.SequenceEqual(other.SubordinateUidRanges)
        && Equals(MetricsEndpoint, other.MetricsEndpoint)
        && MetricsUids.SequenceEqual(other.MetricsUids)
        && MetricsServerUid == other.MetricsServerUid;

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Table, StringComparer.Ordinal);
        hash.Add(ListenPort);
        foreach (var port in Ports)
        {
            hash.Add(port);
        }

        // Each list is preceded by its length, so [1] + [] and [] + [1] hash differently.
        hash.Add(ExemptUids.Count);
        foreach (var uid in ExemptUids)
        {
            hash.Add(uid);
        }

        hash.Add(SuspendedUids.Count);
        foreach (var uid in SuspendedUids)
        {
            hash.Add(uid);
        }

        hash.Add(SuspendedUidRanges.Count);
        foreach (var range in SuspendedUidRanges)
        {
            hash.Add(range);
        }

        hash.Add(BlockedPorts.Count);
        foreach (var port in BlockedPorts)
        {
            hash.Add(port);
        }

        hash.Add(AllowedRoutes.Count);
        foreach (var route in AllowedRoutes)
        {
            hash.Add(route);
        }

        hash.Add(Lockdown);
        hash.Add(DefaultConnectionRate);
        hash.Add(UserConnectionRates.Count);
        foreach (var rate in UserConnectionRates)
        {
            hash.Add(rate);
        }

        hash.Add(SubordinateUidRanges.Count);
        foreach (var range in SubordinateUidRanges)
        {
            hash.Add(range);
        }

        hash.Add(MetricsEndpoint);
        hash.Add(MetricsUids.Count);
        foreach (var uid in MetricsUids)
        {
            hash.Add(uid);
        }

        hash.Add(MetricsServerUid);

        return hash.ToHashCode();
    }

    // Lists print as their contents, so a logged spec says what will be installed.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Table = ").Append(Table)
            .Append(", ListenPort = ").Append(ListenPort)
            .Append(", Ports = [").AppendJoin(", ", Ports)
            .Append("], ExemptUids = [").AppendJoin(", ", ExemptUids)
            .Append("], SuspendedUids = [").AppendJoin(", ", SuspendedUids)
            .Append("], SuspendedUidRanges = [").AppendJoin(", ", SuspendedUidRanges)
            .Append("], BlockedPorts = [").AppendJoin(", ", BlockedPorts)
            .Append("], AllowedRoutes = [").AppendJoin(", ", AllowedRoutes).Append(']');
        if (Lockdown)
        {
            builder.Append(", Lockdown = True");
        }

        if (StrayLogGroup != 0)
        {
            builder.Append(", StrayLogGroup = ").Append(StrayLogGroup);
        }

        // Only when on, so a spec without rate limits logs as it always did.
        if (LimitsConnectionRate)
        {
            builder.Append(", DefaultConnectionRate = ").Append(DefaultConnectionRate?.ToString() ?? "off")
                .Append(", UserConnectionRates = [").AppendJoin(", ", UserConnectionRates).Append(']');
            if (SubordinateConnectionRates is { Count: > 0 } subordinates)
            {
                builder.Append(", SubordinateConnectionRates = [").AppendJoin(", ", subordinates).Append(']');
            }
        }

        if (MetricsEndpoint is not null)
        {
            builder.Append(", MetricsEndpoint = ").Append(MetricsEndpoint).Append(", MetricsUids = [").AppendJoin(", ", MetricsUids).Append(']')
                .Append(", MetricsServerUid = ").Append(MetricsServerUid);
        }

        return true;
    }

    private static int CheckPort(int port, string name)
    {
        if (port is < 1 or > 65535)
        {
            throw new ArgumentOutOfRangeException(name, port, $"{name} must be a TCP port between 1 and 65535.");
        }

        return port;
    }

    private static ReadOnlyCollection<int> NormalizePorts(IReadOnlyList<int> ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        if (ports.Count == 0)
        {
            throw new ArgumentException("Interception.Ports must name at least one port; an empty list would intercept nothing.", nameof(ports));
        }

        foreach (var port in ports)
        {
            CheckPort(port, "Interception.Ports");
        }

        return Array.AsReadOnly([.. ports.Distinct().Order()]);
    }

    private static ReadOnlyCollection<int> NormalizeBlockedPorts(IReadOnlyList<int> ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        foreach (var port in ports)
        {
            CheckPort(port, "Interception.BlockedPorts");
        }

        return Array.AsReadOnly([.. ports.Distinct().Order()]);
    }

    private static ReadOnlyCollection<uint> NormalizeUids(IReadOnlyList<uint> uids)
    {
        ArgumentNullException.ThrowIfNull(uids);
        return Array.AsReadOnly([.. uids.Distinct().Order()]);
    }

    // One rate per uid: two differing rates for a uid (two names of one user) would make the table depend on their order.
    private static ReadOnlyCollection<UidConnectionRate> NormalizeRates(IReadOnlyList<UidConnectionRate> rates)
    {
        ArgumentNullException.ThrowIfNull(rates);
        if (rates.Any(r => r is null))
        {
            throw new ArgumentException("A connection rate is null.", nameof(rates));
        }

        var distinct = rates.Distinct().OrderBy(r => r.Uid).ToList();
        var clash = distinct.GroupBy(r => r.Uid).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
        {
            throw new ArgumentException(
                $"uid {clash.Key} has two different connection rates ({string.Join(" and ", clash)}); give each user one.", nameof(rates));
        }

        return Array.AsReadOnly([.. distinct]);
    }

    private static ReadOnlyCollection<OwnedUidRange> NormalizeOwnedRanges(IReadOnlyList<OwnedUidRange> ranges)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        return Array.AsReadOnly([.. ranges.Distinct().OrderBy(r => r.Range).ThenBy(r => r.Owner)]);
    }

    private static ReadOnlyCollection<AllowedRoute> NormalizeRoutes(IReadOnlyList<AllowedRoute> routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        if (routes.Any(r => r is null))
        {
            throw new ArgumentException("An allowed route is null.", nameof(routes));
        }

        return Array.AsReadOnly([.. routes.Distinct().Order()]);
    }
}
