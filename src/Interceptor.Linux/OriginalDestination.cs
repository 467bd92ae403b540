using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Net;

namespace Interceptor.Linux;

/// <summary>
/// Reads where a REDIRECTed connection was originally going, from the kernel's connection
/// tracking entry (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
/// </summary>
public static class OriginalDestination
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;

    // SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST share the number.
    private const int SoOriginalDst = 80;

    private const int SockaddrInLength = 16;
    private const int SockaddrIn6Length = 28;

    /// <summary>
    /// Returns the original destination of an accepted connection, or null when it was not
    /// NAT-redirected: either the kernel tracks no such connection (ENOENT, conntrack inactive),
    /// or its original destination is the listener itself (a direct connection to our port).
    /// </summary>
    /// <remarks>
    /// Trap: when the getsockopt fails, .NET marks the <see cref="Socket"/> as no longer
    /// <see cref="Socket.Connected"/> even though the connection is fine, and
    /// <c>new NetworkStream(socket)</c> then throws. Create the NetworkStream (or whatever wraps
    /// the socket) before calling this.
    /// </remarks>
    /// <exception cref="LinuxInteropException">
    /// The option could not be read for another reason (for example ENOPROTOOPT when the
    /// conntrack module is not loaded, which also means nothing was redirected).
    /// </exception>
    public static IPEndPoint? TryRead(Socket accepted)
    {
        ArgumentNullException.ThrowIfNull(accepted);

        // A dual-stack IPv6 socket carrying IPv4 has an IPv4 conntrack entry, read at SOL_IP.
        var ipv4 = accepted.AddressFamily == AddressFamily.InterNetwork
            || (accepted.AddressFamily == AddressFamily.InterNetworkV6
                && accepted.RemoteEndPoint is IPEndPoint { Address.IsIPv4MappedToIPv6: true });
        if (!ipv4 && accepted.AddressFamily != AddressFamily.InterNetworkV6)
        {
            throw new ArgumentException($"not an IP socket: {accepted.AddressFamily}", nameof(accepted));
        }

        Span<byte> buffer = stackalloc byte[SockaddrIn6Length];
        var level = ipv4 ? SolIp : SolIpv6;
        var name = ipv4 ? "getsockopt(SOL_IP, SO_ORIGINAL_DST)" : "getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)";
        int length;
        try
        {
            length = accepted.GetRawSocketOption(level, SoOriginalDst, ipv4 ? buffer[..SockaddrInLength] : buffer);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable)
        {
            // .NET reports the kernel's ENOENT as AddressNotAvailable (NativeErrorCode 99,
            // "Cannot assign requested address"): conntrack knows no such connection.
            return null;
        }
        catch (SocketException e)
        {
            throw new LinuxInteropException($"{name} failed: {e.Message} ({e.SocketErrorCode})", e);
        }

        var original = ipv4 ? DecodeSockaddrIn(buffer[..length]) : DecodeSockaddrIn6(buffer[..length]);

        // Where conntrack is active (any nat table loaded), every connection has an entry, and
        // a direct, unredirected connection reports its own destination: our listener.
        return IsOwnEndPoint(original, accepted.LocalEndPoint as IPEndPoint) ? null : original;
    }

    internal static bool IsOwnEndPoint(IPEndPoint original, IPEndPoint? local) =>
        local is not null
        && original.Port == local.Port
        && MappedAddress.Unmap(original).Address.Equals(MappedAddress.Unmap(local).Address);

    /// <summary>sockaddr_in: family (2, host order), port (2, network order), address (4).</summary>
    internal static IPEndPoint DecodeSockaddrIn(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 8)
        {
            throw new LinuxInteropException($"SO_ORIGINAL_DST returned {sockaddr.Length} bytes, expected a sockaddr_in");
        }

        var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
        return new IPEndPoint(new IPAddress(sockaddr.Slice(4, 4)), port);
    }

    /// <summary>sockaddr_in6: family (2), port (2, network order), flowinfo (4), address (16), scope id (4).</summary>
    internal static IPEndPoint DecodeSockaddrIn6(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 24)
        {
            throw new LinuxInteropException($"IP6T_SO_ORIGINAL_DST returned {sockaddr.Length} bytes, expected a sockaddr_in6");
        }

        var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
        var scope = sockaddr.Length >= SockaddrIn6Length ? BitConverter.ToUInt32(sockaddr[24..]) : 0;
        return new IPEndPoint(new IPAddress(sockaddr.Slice(8, 16), scope), port);
    }
}
