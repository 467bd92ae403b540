using System.Net;

namespace Interceptor.Linux;

/// <summary>
/// One NETLINK_SOCK_DIAG socket with its own sequence counter and receive buffer. Not
/// thread-safe: <see cref="SocketOwnerLookup"/> hands each one to a single caller at a time.
/// </summary>
internal sealed class SockDiagSocket : IPooledNetlinkSocket
{
    private const int NetlinkSockDiag = 4;

    // One reply is an inet_diag_msg plus a few small attributes (well under 200 bytes); the
    // slack keeps a future attribute from truncating the datagram.
    private const int ReceiveBufferSize = 4096;

    private readonly NetlinkChannel _channel;
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferSize];
    private uint _sequence;

    private SockDiagSocket(NetlinkChannel channel)
    {
        _channel = channel;
    }

    /// <summary>
    /// Set when the socket may hold an unread reply (timeout, malformed datagram): it must not
    /// serve another lookup, since that lookup could read the stale answer.
    /// </summary>
    public bool Faulted => _channel.Faulted;

    /// <summary>Opens the socket; throws <see cref="LinuxInteropException"/> with the errno.</summary>
    public static SockDiagSocket Open(TimeSpan receiveTimeout) =>
        new(NetlinkChannel.Open(NetlinkSockDiag, "NETLINK_SOCK_DIAG", receiveTimeout));

    /// <summary>
    /// Asks for the connected TCP socket whose local end is <paramref name="local"/> and remote end
    /// <paramref name="remote"/>. Null when the kernel has no such socket, or answered with another one
    /// (a listener on the port, a TIME_WAIT entry): that socket's uid says nothing about this connection.
    /// </summary>
    public SocketOwner? Query(IPEndPoint local, IPEndPoint remote)
    {
        var reply = Ask(local, remote);
        return reply.Status == SockDiagStatus.Found ? reply.Owner : null;
    }

    /// <summary>The kernel's answer as decoded: <see cref="SockDiagStatus.Found"/>, NotFound or OtherSocket.</summary>
    internal SockDiagReply Ask(IPEndPoint local, IPEndPoint remote)
    {
        var sequence = ++_sequence;
        Span<byte> request = stackalloc byte[SockDiagMessage.RequestLength];
        SockDiagMessage.EncodeRequest(request, sequence, local, remote);
        _channel.Send(request);

        while (true)
        {
            var received = _channel.Receive(_receiveBuffer);
            if (!SockDiagMessage.TryDecodeResponse(_receiveBuffer.AsSpan(0, received), sequence, local, remote, out var reply))
            {
                _channel.MarkFaulted();
                throw new OwnerLookupException($"malformed sock_diag reply ({received} bytes)");
            }

            switch (reply.Status)
            {
                case SockDiagStatus.Found:
                case SockDiagStatus.OtherSocket:
                case SockDiagStatus.NotFound:
                    return reply;
                case SockDiagStatus.Error:
                    throw new OwnerLookupException("sock_diag SOCK_DIAG_BY_FAMILY", reply.Errno);
                case SockDiagStatus.OtherSequence:
                default:
                    // A late reply to an earlier request; ours is queued behind it.
                    continue;
            }
        }
    }

    public void Dispose() => _channel.Dispose();
}
