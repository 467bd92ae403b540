using System.Net;

namespace Interceptor.Linux;

/// <summary>
/// One NETLINK_NETFILTER socket for ctnetlink GET requests, with its own sequence counter and
/// receive buffer. Not thread-safe: <see cref="ConntrackLookup"/> hands each one to one caller at a time.
/// </summary>
internal sealed class ConntrackSocket : IPooledNetlinkSocket
{
    private const int NetlinkNetfilter = 12;

    // One entry is two tuples plus status, timeout, counters, labels and the like: a few hundred
    // bytes. The slack keeps optional attributes (security context, helper) from cutting it.
    private const int ReceiveBufferSize = 8192;

    private readonly NetlinkChannel _channel;
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferSize];
    private uint _sequence;

    private ConntrackSocket(NetlinkChannel channel)
    {
        _channel = channel;
    }

    /// <summary>See <see cref="NetlinkChannel.Faulted"/>.</summary>
    public bool Faulted => _channel.Faulted;

    /// <summary>Opens the socket; throws <see cref="LinuxInteropException"/> with the errno.</summary>
    public static ConntrackSocket Open(TimeSpan receiveTimeout) =>
        new(NetlinkChannel.Open(NetlinkNetfilter, "NETLINK_NETFILTER", receiveTimeout));

    /// <summary>
    /// Asks for the TCP conntrack entry whose reply tuple is <paramref name="replySource"/> →
    /// <paramref name="replyDestination"/> (same family). Null when the kernel tracks no such connection.
    /// </summary>
    public ConntrackEntry? Query(IPEndPoint replySource, IPEndPoint replyDestination)
    {
        var sequence = ++_sequence;
        Span<byte> request = stackalloc byte[ConntrackMessage.MaximumRequestLength];
        var length = ConntrackMessage.EncodeGetByReply(request, sequence, replySource, replyDestination);
        _channel.Send(request[..length]);

        while (true)
        {
            var received = _channel.Receive(_receiveBuffer);
            if (!ConntrackMessage.TryDecodeResponse(_receiveBuffer.AsSpan(0, received), sequence, out var reply))
            {
                _channel.MarkFaulted();
                throw new OwnerLookupException($"malformed ctnetlink reply ({received} bytes)");
            }

            switch (reply.Status)
            {
                case ConntrackStatus.Found:
                    return reply.Entry;
                case ConntrackStatus.NotFound:
                    return null;
                case ConntrackStatus.Error:
                    // EPERM without CAP_NET_ADMIN; EOPNOTSUPP/EINVAL when ctnetlink is not available.
                    throw new OwnerLookupException("ctnetlink IPCTNL_MSG_CT_GET", reply.Errno);
                case ConntrackStatus.OtherSequence:
                default:
                    // A late reply to an earlier request; ours is queued behind it.
                    continue;
            }
        }
    }

    public void Dispose() => _channel.Dispose();
}
