using System.Net;
using Interceptor.Core.Net;
using Interceptor.Core.Replies;

namespace Interceptor.Core.Decide;

/// <summary>
/// No open relay: decides whether a redirected connection's original destination may be relayed to.
/// A destination on this host (loopback, or one of its own addresses) is refused unless the admin listed it:
/// relaying there is either a loop through our own listener or a way around the local MTA's rules.
/// </summary>
public sealed class DestinationPolicy(int listenPort, IEnumerable<IPEndPoint> permittedLocal, Func<IReadOnlySet<IPAddress>> hostAddresses)
{
    private readonly HashSet<IPEndPoint> _permitted = [.. permittedLocal];

    /// <summary>Null when the destination may be relayed to, else the reply that refuses the connection.</summary>
    public SmtpReply? Check(IPEndPoint destination)
    {
        var address = MappedAddress.Unmap(destination.Address);
        var local = IPAddress.IsLoopback(address) || hostAddresses().Contains(address);
        if (!local)
        {
            return null;
        }

        if (destination.Port == listenPort)
        {
            return new SmtpReply(421, "4.3.0", $"direct connections to the interceptor ({destination}) are refused; connect to the real destination's port 25");
        }

        return _permitted.Contains(new IPEndPoint(address, destination.Port))
            ? null
            : new SmtpReply(421, "4.7.1", $"relaying to {destination}, an address of this host, is not permitted (Relay.PermittedLocalDestinations)");
    }
}
