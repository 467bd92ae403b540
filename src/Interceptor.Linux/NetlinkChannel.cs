using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// One raw netlink socket addressed to the kernel (sock_diag, ctnetlink): send one request, read
/// datagrams back, with a receive timeout. Not thread-safe; the pools hand each channel to one
/// caller at a time. Every failure is an <see cref="OwnerLookupException"/>, so callers fail closed.
/// </summary>
internal sealed unsafe partial class NetlinkChannel : IDisposable
{
    // recv flag (bits/socket.h): return the datagram's real length even when it did not fit.
    private const int MsgTrunc = 0x20;

    private readonly NetlinkSocketHandle _handle;
    private readonly string _name;

    private NetlinkChannel(NetlinkSocketHandle handle, string name)
    {
        _handle = handle;
        _name = name;
    }

    /// <summary>
    /// Set when the socket may hold an unread reply (timeout, malformed datagram): it must not
    /// serve another lookup, since that lookup could read the stale answer.
    /// </summary>
    public bool Faulted { get; private set; }

    /// <summary>
    /// Opens an AF_NETLINK socket of <paramref name="protocol"/>; <paramref name="name"/> (e.g.
    /// "NETLINK_SOCK_DIAG") names it in error messages. Throws <see cref="LinuxInteropException"/>
    /// with the errno, so callers can tell "not supported here" from a transient failure.
    /// </summary>
    public static NetlinkChannel Open(int protocol, string name, TimeSpan receiveTimeout)
    {
        var fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, protocol);
        if (fd < 0)
        {
            throw new LinuxInteropException($"socket(AF_NETLINK, {name})", Marshal.GetLastPInvokeError());
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

            return new NetlinkChannel(handle, name);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Marks the channel unusable after the caller found a reply it could not parse.</summary>
    public void MarkFaulted() => Faulted = true;

    /// <summary>Sends one request datagram to the kernel.</summary>
    public void Send(ReadOnlySpan<byte> request)
    {
        var addedRef = false;
        _handle.DangerousAddRef(ref addedRef);
        try
        {
            var fd = (int)_handle.DangerousGetHandle();
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
                        throw new OwnerLookupException($"send({_name}) wrote {sent} of {request.Length} bytes");
                    }

                    throw new OwnerLookupException($"send({_name})", errno);
                }
            }
        }
        finally
        {
            if (addedRef)
            {
                _handle.DangerousRelease();
            }
        }
    }

    /// <summary>Reads one whole datagram into <paramref name="buffer"/> and returns its length.</summary>
    public int Receive(Span<byte> buffer)
    {
        var received = ReceiveRaw(buffer, out var errno);
        if (received >= 0 && received <= buffer.Length)
        {
            return (int)received;
        }

        Faulted = true;
        if (received >= 0)
        {
            // A cut datagram would parse as a shorter, wrong answer; refuse it.
            throw new OwnerLookupException($"recv({_name}): a {received}-byte reply does not fit in {buffer.Length} bytes");
        }

        var call = errno == LibC.EAGAIN ? $"recv({_name}) (timed out)" : $"recv({_name})";
        throw new OwnerLookupException(call, errno);
    }

    /// <summary>
    /// One recv, retried on EINTR: the datagram's real length (MSG_TRUNC: more than <paramref name="buffer"/> holds when it
    /// was cut), or -1 with <paramref name="errno"/> set.
    /// </summary>
    private long ReceiveRaw(Span<byte> buffer, out int errno)
    {
        var addedRef = false;
        _handle.DangerousAddRef(ref addedRef);
        try
        {
            var fd = (int)_handle.DangerousGetHandle();
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    long received = LibC.recv(fd, p, buffer.Length, MsgTrunc);
                    errno = received < 0 ? Marshal.GetLastPInvokeError() : 0;
                    if (errno != LibC.EINTR)
                    {
                        return received;
                    }
                }
            }
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

    /// <summary>struct timeval on 64-bit Linux (x86_64, arm64): two longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct TimeVal
    {
        public long Seconds;
        public long Microseconds;
    }
}
