using System.Net;
using Interceptor.Core.Net;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Whose connections to an intercepted port the table redirects: everybody's except the exempt users' and the
/// allowed routes' (<c>Routes.Users</c>). A socket of an exempt user, or of a user with a route to that very
/// destination, went out directly, so it can never be the client of a redirected connection. When the exact owner
/// lookup names such a socket, it found another connection that happens to share the 4-tuple (NAT moved the real
/// client's port onto it, issue 12.2): the attributor must then look again through conntrack, never trust it.
/// </summary>
public sealed class RedirectScope
{
    private readonly HashSet<uint> _exempt;
    private readonly HashSet<(uint Uid, IPAddress Address, int Port)> _routes;

    public RedirectScope(IEnumerable<uint> exemptUids, IEnumerable<AllowedRoute> routes)
    {
        _exempt = [.. exemptUids];
        _routes = [.. routes.Select(r => (r.Uid, r.Address, r.Port))];
    }

    /// <summary>Nobody exempt, no routes: every socket may be a redirected client (unit tests).</summary>
    public static RedirectScope Everybody { get; } = new([], []);

    public static RedirectScope Of(RulesetSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new RedirectScope(spec.ExemptUids, spec.AllowedRoutes);
    }

    /// <summary>True when the table redirects <paramref name="uid"/>'s connections to <paramref name="destination"/>.</summary>
    public bool Redirects(uint uid, IPEndPoint destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (_exempt.Contains(uid))
        {
            return false;
        }

        // Routes hold IPv4 destinations as IPv4 (AllowedRoute), as a dual-stack socket's mapped address leaves the host.
        var address = MappedAddress.Unmap(destination.Address);
        return _routes.Count == 0 || !_routes.Contains((uid, address, destination.Port));
    }
}
