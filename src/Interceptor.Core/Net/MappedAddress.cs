using System.Net;

namespace Interceptor.Core.Net;

/// <summary>
/// The one place an IPv4-mapped IPv6 address (::ffff:a.b.c.d, how a dual-stack socket shows an IPv4 peer) becomes its
/// IPv4 form: the kernel tracks and looks up such connections as IPv4, routes and sets hold them as IPv4, and an
/// address compared in one form and stored in the other would never match.
/// </summary>
public static class MappedAddress
{
    public static IPAddress Unmap(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    public static IPEndPoint Unmap(IPEndPoint endPoint) =>
        endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;
}
