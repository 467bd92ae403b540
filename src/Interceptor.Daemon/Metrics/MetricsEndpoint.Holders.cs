using System.Net;
using Interceptor.Linux;

namespace Interceptor.Daemon.Metrics;

/// <summary>Who holds the endpoint's port when it cannot listen, for the log line that names them.</summary>
public sealed partial class MetricsEndpoint
{
    /// <summary>
    /// Who listens where the endpoint would (its address, a wildcard, or their IPv4-mapped forms), read from the kernel's
    /// socket table as for the SMTP listener. At most <see cref="HoldersNamed"/> uids are named: a user with a range of
    /// sub-UIDs can open a listener as each, and the line (and the name lookups) must stay small. A socket that is only
    /// bound, not listening, is not in the table.
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

        return uids.Count == 0 ? "a socket that is bound but not listening, or whose owner was not found" : Describe(uids, DescribeUid);
    }

    /// <summary>
    /// "uid N (name), …" for at most <see cref="HoldersNamed"/> of <paramref name="uids"/> (distinct, in order), "and K
    /// more uids" for the rest; each as <paramref name="describe"/> says (<see cref="DescribeUid"/>).
    /// </summary>
    internal static string Describe(IEnumerable<uint> uids, Func<uint, string> describe)
    {
        var distinct = uids.Distinct().Order().ToList();
        var named = string.Join(", ", distinct.Take(HoldersNamed).Select(describe));
        return distinct.Count > HoldersNamed ? $"{named} and {distinct.Count - HoldersNamed} more uids" : named;
    }

    private bool Conflicts(ListeningSocket socket)
    {
        var address = Core.Net.MappedAddress.Unmap(socket.Local.Address);
        return address.Equals(Core.Net.MappedAddress.Unmap(endpoint.Address)) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
    }
}
