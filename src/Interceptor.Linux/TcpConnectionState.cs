using System.Net.Sockets;

namespace Interceptor.Linux;

/// <summary>
/// The TCP state of a connected socket as the kernel has it now (TCP_INFO's first field, tcpi_state). One getsockopt,
/// no allocation.
/// </summary>
public static class TcpConnectionState
{
    private const int IpProtoTcp = 6;
    private const int TcpInfo = 11;

    /// <summary>The state of <paramref name="socket"/>'s connection (a TCP socket).</summary>
    /// <exception cref="LinuxInteropException">The kernel did not answer (not a TCP socket).</exception>
    /// <exception cref="ObjectDisposedException"><paramref name="socket"/> was closed here.</exception>
    public static TcpState Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);

        // The kernel copies as much of struct tcp_info as asked for; tcpi_state is its first byte.
        Span<byte> info = stackalloc byte[8];
        int length;
        try
        {
            length = socket.GetRawSocketOption(IpProtoTcp, TcpInfo, info);
        }
        catch (SocketException e)
        {
            throw new LinuxInteropException($"getsockopt(IPPROTO_TCP, TCP_INFO) failed: {e.Message} ({e.SocketErrorCode})", e);
        }

        if (length < 1)
        {
            throw new LinuxInteropException("getsockopt(IPPROTO_TCP, TCP_INFO) returned no state");
        }

        return (TcpState)info[0];
    }

    /// <summary>
    /// Whether the peer's end of the connection still exists: established, half-closed by the peer (it sent FIN and
    /// waits for the rest), or a TCP Fast Open connection accepted before the handshake's last ACK (SYN_RECV, on a host
    /// whose net.ipv4.tcp_fastopen lets servers take data in the SYN). Each holds its 4-tuple. A reset connection is in
    /// <see cref="TcpState.Close"/>, and its 4-tuple may already carry a new connection.
    /// </summary>
    public static bool PeerStillThere(TcpState state) => state is TcpState.Established or TcpState.CloseWait or TcpState.SynReceived;
}
