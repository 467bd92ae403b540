using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>How a wait for a multicast datagram ended.</summary>
internal enum NetlinkNotice
{
    /// <summary>A whole datagram is in the buffer.</summary>
    Datagram,

    /// <summary>Nothing arrived within the receive timeout.</summary>
    TimedOut,

    /// <summary>
    /// Datagrams were lost: the socket's queue overflowed (ENOBUFS), or one did not fit in the buffer. Whatever they
    /// said must be assumed.
    /// </summary>
    Lost,
}

/// <summary>Multicast membership: the channel hears a group's notifications as well as answers to its own requests.</summary>
internal sealed unsafe partial class NetlinkChannel
{
    // linux/socket.h and linux/netlink.h: not in every libc binding.
    private const int SolNetlink = 270;
    private const int NetlinkAddMembership = 1;

    /// <summary>
    /// Binds the socket (the kernel picks its port id) and joins multicast <paramref name="group"/> (e.g.
    /// NFNLGRP_NFTABLES); needs CAP_NET_ADMIN for most groups. Call once, before anything is sent.
    /// </summary>
    public void JoinGroup(int group)
    {
        var addedRef = false;
        _handle.DangerousAddRef(ref addedRef);
        try
        {
            // An unbound socket is not delivered multicasts, even as a member (checked on 6.18).
            var address = new SockaddrNetlink { Family = (ushort)LibC.AF_NETLINK };
            var fd = (int)_handle.DangerousGetHandle();
            if (LibC.bind(fd, (sockaddr*)&address, (uint)sizeof(SockaddrNetlink)) != 0)
            {
                throw new LinuxInteropException($"bind({_name})", Marshal.GetLastPInvokeError());
            }

            if (LibC.setsockopt(fd, SolNetlink, NetlinkAddMembership, &group, sizeof(int)) != 0)
            {
                throw new LinuxInteropException($"setsockopt(NETLINK_ADD_MEMBERSHIP {group}, {_name})", Marshal.GetLastPInvokeError());
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

    /// <summary>
    /// Waits up to the receive timeout for one notification. Unlike <see cref="Receive"/>, a timeout and lost datagrams
    /// are answers here, not faults: a listener keeps listening after either.
    /// </summary>
    public NetlinkNotice ReceiveNotice(Span<byte> buffer, out int length)
    {
        var received = ReceiveRaw(buffer, out var errno);
        length = (int)Math.Clamp(received, 0, buffer.Length);
        if (received >= 0)
        {
            return received <= buffer.Length ? NetlinkNotice.Datagram : NetlinkNotice.Lost;
        }

        if (errno == LibC.EAGAIN)
        {
            return NetlinkNotice.TimedOut;
        }

        return errno == LibC.ENOBUFS ? NetlinkNotice.Lost : throw new LinuxInteropException($"recv({_name})", errno);
    }

    /// <summary>struct sockaddr_nl: port id 0 asks the kernel to choose one; no legacy group mask.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrNetlink
    {
        public ushort Family;
        public ushort Padding;
        public uint PortId;
        public uint Groups;
    }
}
