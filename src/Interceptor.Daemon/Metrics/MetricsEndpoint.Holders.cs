using System.Net;
using Interceptor.Core.Attribution;
using Interceptor.Linux;

namespace Interceptor.Daemon.Metrics;

/// <summary>Who holds the endpoint's port when it cannot listen, for the log line that names them.</summary>
public sealed partial class MetricsEndpoint
{
    /// <summary>
    /// Who listens where the endpoint would (its address, a wildcard, or their IPv4-mapped forms), read from the kernel's
    /// socket table as for the SMTP listener. At most <see cref="HoldersNamed"/> users are named, a sub-UID under the owner of
    /// its range: a user with a range can open a listener as each of its uids, and the line (and the name lookups) must
    /// stay small. A socket that is only bound, not listening, is not in the table.
    /// </summary>
    private string Holders()
    {
        List<uint> uids;
        try
        {
            uids = [.. ListeningSockets.OnPort(endpoint.Port).Where(Conflicts).Select(h => h.Uid)];
        }
        catch (LinuxInteropException e)
        {
            return $"a socket whose owner could not be read ({e.Message})";
        }

        return uids.Count == 0 ? "a socket that is bound but not listening, or whose owner was not found" : Describe(uids, SubordinateOwnerOf);
    }

    /// <summary>
    /// "uid 1002 (bob), 7 sub-UIDs of uid 1001 (alice) (231072, 231073, 231074, …)": the users behind <paramref name="uids"/>,
    /// a sub-UID under the owner of its range (<paramref name="ownerOf"/>, null for none), at most
    /// <see cref="HoldersNamed"/> users named and "and K more users" for the rest. Grouped by owner first, so that a
    /// customer's many sub-UIDs cannot take every place in the line and hide another customer.
    /// </summary>
    internal static string Describe(IEnumerable<uint> uids, Func<uint, SubordinateUidOwner?> ownerOf)
    {
        var users = uids.Distinct().Select(uid => (Uid: uid, Owner: ownerOf(uid))).GroupBy(u => u.Owner?.Uid ?? u.Uid).OrderBy(g => g.Key).ToList();
        var named = string.Join(", ", users.Take(HoldersNamed).Select(DescribeUser));
        return users.Count > HoldersNamed ? $"{named} and {users.Count - HoldersNamed} more users" : named;
    }

    private static string DescribeUser(IGrouping<uint, (uint Uid, SubordinateUidOwner? Owner)> user)
    {
        var subordinates = user.Where(u => u.Owner is not null).Select(u => u.Uid).Order().ToList();
        var itself = user.Any(u => u.Owner is null);
        var who = itself || subordinates.Count == 0 ? UserDatabase.Describe(user.Key) : $"uid {user.Key} ({user.First().Owner!.Name})";
        if (subordinates.Count == 0)
        {
            return who;
        }

        // "sub-UIDs 1, 2 of …", or "100 sub-UIDs of … (1, 2, 3, …)": never an "and K more" that reads as more users.
        var listed = string.Join(", ", subordinates.Take(HoldersNamed));
        var some = subordinates.Count == 1 ? $"sub-UID {listed}"
            : subordinates.Count <= HoldersNamed ? $"sub-UIDs {listed}"
            : null;
        return (itself, some) switch
        {
            (true, not null) => $"{who} with {some}",
            (true, null) => $"{who} with {subordinates.Count} sub-UIDs ({listed}, …)",
            (false, not null) => $"{some} of {who}",
            (false, null) => $"{subordinates.Count} sub-UIDs of {who} ({listed}, …)",
        };
    }

    private bool Conflicts(ListeningSocket socket)
    {
        var address = Core.Net.MappedAddress.Unmap(socket.Local.Address);
        return address.Equals(Core.Net.MappedAddress.Unmap(endpoint.Address)) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
    }
}
