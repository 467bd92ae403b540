using System.Net;
using System.Net.Sockets;

namespace Interceptor.Linux;

internal static class EndPoints
{
    /// <summary>
    /// Turns an IPv4-mapped IPv6 endpoint (a dual-stack socket carrying IPv4) into its IPv4
    /// form: the kernel tracks and looks up such connections as IPv4.
    /// </summary>
    public static IPEndPoint Normalize(IPEndPoint endPoint) =>
        endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.IsIPv4MappedToIPv6
            ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port)
            : endPoint;
}
