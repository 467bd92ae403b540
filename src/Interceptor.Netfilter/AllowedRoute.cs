using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Net;

namespace Interceptor.Netfilter;

/// <summary>
/// One destination that one user reaches directly, without interception (<c>Routes.Users.&lt;name&gt;</c>
/// resolved to numbers): an element of the set <c>allowed_routes_v4</c> or <c>allowed_routes_v6</c>.
/// An IPv4-mapped IPv6 address (<c>::ffff:192.0.2.1</c>) is stored as the IPv4 address it stands for,
/// because a connection to it leaves the host as IPv4.
/// </summary>
public sealed record AllowedRoute(uint Uid, IPAddress Address, int Port) : IComparable<AllowedRoute>
{
    public IPAddress Address { get; init => field = CheckAddress(value); } = CheckAddress(Address);

    public int Port { get; init => field = CheckPort(value); } = CheckPort(Port);

    /// <summary>True for an IPv6 destination (set <c>allowed_routes_v6</c>), false for IPv4.</summary>
    public bool IsIPv6 => Address.AddressFamily == AddressFamily.InterNetworkV6;

    /// <summary>Orders by UID, then IPv4 before IPv6, then address bytes, then port: the order the renderer writes.</summary>
    public int CompareTo(AllowedRoute? other)
    {
        if (other is null)
        {
            return 1;
        }

        var result = Uid.CompareTo(other.Uid);
        if (result == 0)
        {
            result = IsIPv6.CompareTo(other.IsIPv6);
        }

        if (result == 0)
        {
            result = Address.GetAddressBytes().AsSpan().SequenceCompareTo(other.Address.GetAddressBytes());
        }

        return result == 0 ? Port.CompareTo(other.Port) : result;
    }

    /// <summary>The element as nft writes it: <c>UID . ADDRESS . PORT</c>.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Uid} . {Address} . {Port}");

    public static bool operator <(AllowedRoute? left, AllowedRoute? right) => Compare(left, right) < 0;

    public static bool operator <=(AllowedRoute? left, AllowedRoute? right) => Compare(left, right) <= 0;

    public static bool operator >(AllowedRoute? left, AllowedRoute? right) => Compare(left, right) > 0;

    public static bool operator >=(AllowedRoute? left, AllowedRoute? right) => Compare(left, right) >= 0;

    private static int Compare(AllowedRoute? left, AllowedRoute? right) =>
        left is null ? (right is null ? 0 : -1) : left.CompareTo(right);

    private static IPAddress CheckAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        address = MappedAddress.Unmap(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"Allowed route address {address} is neither IPv4 nor IPv6.", nameof(address));
        }

        // nft matches the address only; a zone index (fe80::1%eth0) cannot be expressed and would be silently lost.
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            throw new ArgumentException($"Allowed route address {address} has a zone index, which nftables cannot match; use a global address.", nameof(address));
        }

        return address;
    }

    private static int CheckPort(int port) =>
        port is < 1 or > 65535
            ? throw new ArgumentOutOfRangeException(nameof(port), port, "An allowed route's port must be a TCP port between 1 and 65535.")
            : port;
}
