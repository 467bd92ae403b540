using System.Net;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// One NETLINK_SOCK_DIAG socket with its own sequence counter and receive buffer. Not
/// thread-safe: <see cref="SocketOwnerLookup"/> hands each one to a single caller at a time.
/// </summary>
internal sealed unsafe class SockDiagSocket : IDisposable
{
    private const int NetlinkSockDiag = 4;

    // One reply is an inet_diag_msg plus a few small attributes (well under 200 bytes); the
    // slack keeps a future attribute from truncating the datagram.
    private const int ReceiveBufferSize = 4096;

    private readonly NetlinkSocketHandle _handle;
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferSize];
    private uint _sequence;

    private SockDiagSocket(NetlinkSocketHandle handle)
    {
        _handle = handle;
    }

    /// <summary>
    /// Set when the socket may hold an unread reply (timeout, malformed datagram): it must not
    /// serve another lookup, since that lookup could read the stale answer.
    /// </summary>
    public bool Faulted { get; private set; }

    /// <summary>Opens the socket; throws <see cref="LinuxInteropException"/> with the errno.</summary>
    public static SockDiagSocket Open(TimeSpan receiveTimeout)
    {
        var fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, NetlinkSockDiag);
        if (fd < 0)
        {
            throw new LinuxInteropException("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", Marshal.GetLastPInvokeError());
        }

        var handle = new NetlinkSocketHandle(fd);
        try
        {
            // The kernel answers synchronously, so the reply is normally queued before recv is
            // even called; the timeout only guarantees a lookup can never hang the daemon.
            var timeout = new TimeVal
            {
                Seconds = (long)receiveTimeout.TotalSeconds,
                Microseconds = receiveTimeout.Microseconds + (receiveTimeout.Milliseconds * 1000L),
            };
            if (LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVTIMEO, &timeout, (uint)sizeof(TimeVal)) != 0)
            {
                throw new LinuxInteropException("setsockopt(SO_RCVTIMEO)", Marshal.GetLastPInvokeError());
            }

            return new SockDiagSocket(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Asks for the TCP socket whose local end is <paramref name="local"/> and remote end
    /// <paramref name="remote"/>. Null when the kernel has no such socket.
    /// </summary>
    public SocketOwner? Query(IPEndPoint local, IPEndPoint remote)
    {
        var sequence = ++_sequence;
        Span<byte> request = stackalloc byte[SockDiagMessage.RequestLength];
        SockDiagMessage.EncodeRequest(request, sequence, local, remote);

        var addedRef = false;
        _handle.DangerousAddRef(ref addedRef);
        try
        {
            var fd = (int)_handle.DangerousGetHandle();
            Send(fd, request);
            return Receive(fd, sequence);
        }
        finally
        {
            if (addedRef)
            {
                _handle.DangerousRelease();
            }
        }
    }

    public void Dispose() => _handle.Dispose();

    private void Send(int fd, ReadOnlySpan<byte> request)
    {
        fixed (byte* p = request)
        {
            while (true)
            {
                // No destination address: an unconnected netlink socket sends to the kernel.
                long sent = LibC.send(fd, p, request.Length, 0);
                if (sent == request.Length)
                {
                    return;
                }

                var errno = sent < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (errno == LibC.EINTR)
                {
                    continue;
                }

                Faulted = true;
                if (errno == 0)
                {
                    throw new OwnerLookupException($"send(NETLINK_SOCK_DIAG) wrote {sent} of {request.Length} bytes");
                }

                throw new OwnerLookupException("send(NETLINK_SOCK_DIAG)", errno);
            }
        }
    }

    private SocketOwner? Receive(int fd, uint sequence)
    {
        fixed (byte* p = _receiveBuffer)
        {
            while (true)
            {
                long received = LibC.recv(fd, p, _receiveBuffer.Length, 0);
                if (received < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == LibC.EINTR)
                    {
                        continue;
                    }

                    Faulted = true;
                    var call = errno == LibC.EAGAIN ? "recv(NETLINK_SOCK_DIAG) (timed out)" : "recv(NETLINK_SOCK_DIAG)";
                    throw new OwnerLookupException(call, errno);
                }

                var datagram = _receiveBuffer.AsSpan(0, (int)received);
                if (!SockDiagMessage.TryDecodeResponse(datagram, sequence, out var reply))
                {
                    Faulted = true;
                    throw new OwnerLookupException($"malformed sock_diag reply ({received} bytes)");
                }

                switch (reply.Status)
                {
                    case SockDiagStatus.Found:
                        return reply.Owner;
                    case SockDiagStatus.NotFound:
                        return null;
                    case SockDiagStatus.Error:
                        throw new OwnerLookupException("sock_diag SOCK_DIAG_BY_FAMILY", reply.Errno);
                    case SockDiagStatus.OtherSequence:
                    default:
                        // A late reply to an earlier request; ours is queued behind it.
                        continue;
                }
            }
        }
    }

    /// <summary>struct timeval on 64-bit Linux (x86_64, arm64): two longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct TimeVal
    {
        public long Seconds;
        public long Microseconds;
    }
}
