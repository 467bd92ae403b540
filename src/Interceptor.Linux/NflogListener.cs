namespace Interceptor.Linux;

/// <summary>
/// Receives the packets that nft rules log to one NFLOG group (<c>log group N</c>) in the network namespace it was started
/// in, on a thread of its own. The kernel allows one listener per group: a group another process (ulogd, another daemon)
/// has bound is refused at <see cref="Start"/>. Packets the kernel could not queue to us (a full socket buffer) are
/// reported as lost, not guessed at.
/// </summary>
public sealed class NflogListener : IDisposable
{
    private const int NetlinkNetfilter = 12;
    private const int Eperm = 1;
    private const int Ebusy = 16;

    // The IPv6 and TCP headers with options fit; a logged data segment is not copied whole.
    private const int CopiedBytes = 128;

    private readonly NetlinkChannel _channel;
    private readonly Action<LoggedPacket> _logged;
    private readonly Action _lost;
    private NetlinkListener? _listener;

    private NflogListener(NetlinkChannel channel, Action<LoggedPacket> logged, Action lost)
    {
        _channel = channel;
        _logged = logged;
        _lost = lost;
    }

    /// <summary>
    /// Binds NFLOG <paramref name="group"/> to a new socket (needs CAP_NET_ADMIN) and starts listening. <paramref name="logged"/>
    /// and <paramref name="lost"/> run on the listening thread; <paramref name="failed"/> runs once if the socket fails for
    /// good, after which nothing more is heard.
    /// </summary>
    /// <exception cref="LinuxInteropException">The socket could not be opened, or the kernel refused the group (another
    /// process has it, no permission, or no NFLOG in this kernel).</exception>
    public static NflogListener Start(ushort group, Action<LoggedPacket> logged, Action lost, Action<Exception> failed)
    {
        ArgumentOutOfRangeException.ThrowIfZero(group);
        ArgumentNullException.ThrowIfNull(logged);
        ArgumentNullException.ThrowIfNull(lost);
        ArgumentNullException.ThrowIfNull(failed);
        var channel = NetlinkChannel.Open(NetlinkNetfilter, "NETLINK_NETFILTER", NetlinkListener.PollForStop);
        var nflog = new NflogListener(channel, logged, lost);
        try
        {
            Span<byte> request = stackalloc byte[NflogMessage.ConfigRequestLength];
            nflog.Configure(request[..NflogMessage.EncodeBind(request, group, 1)], group, "bind");
            nflog.Configure(request[..NflogMessage.EncodeCopyHeaders(request, group, 2, CopiedBytes)], group, "set the copy mode of");
        }
        catch
        {
            channel.Dispose();
            throw;
        }

        nflog._listener = new NetlinkListener(channel, "nflog", nflog.Heard, failed);
        return nflog;
    }

    // Sends one configuration request and waits for its ack; packets that arrive first are passed on.
    private void Configure(ReadOnlySpan<byte> request, ushort group, string what)
    {
        var sequence = BitConverter.ToUInt32(request[8..12]);
        _channel.Send(request);
        var buffer = new byte[64 * 1024];
        var deadline = Environment.TickCount64 + 2000;
        while (Environment.TickCount64 < deadline)
        {
            var notice = _channel.ReceiveNotice(buffer, out var length);
            if (notice != NetlinkNotice.Datagram)
            {
                continue;
            }

            var datagram = buffer.AsSpan(0, length);
            switch (NflogMessage.TryDecodeAck(datagram, sequence, out var errno))
            {
                case NetlinkFrameKind.Payload:
                    return;
                case NetlinkFrameKind.Error:
                    throw new LinuxInteropException(
                        errno switch
                        {
                            Eperm => $"NFLOG group {group}: another process has bound it (ulogd?), or the daemon lacks CAP_NET_ADMIN ({what} it)",
                            Ebusy => $"NFLOG group {group}: already bound ({what} it)",
                            _ => $"NFLOG group {group}: could not {what} it (a kernel without NFLOG?)",
                        }, errno);
                default:
                    Heard(NetlinkNotice.Datagram, datagram);
                    break;
            }
        }

        throw new LinuxInteropException($"NFLOG group {group}: the kernel did not answer the request to {what} it within 2 s");
    }

    private void Heard(NetlinkNotice notice, ReadOnlySpan<byte> datagram)
    {
        if (notice == NetlinkNotice.Lost)
        {
            _lost();
            return;
        }

        foreach (var packet in notice == NetlinkNotice.Datagram ? NflogMessage.DecodePackets(datagram) : [])
        {
            _logged(packet);
        }
    }

    public void Dispose()
    {
        if (_listener is null)
        {
            _channel.Dispose();
        }
        else
        {
            _listener.Dispose();
        }
    }
}
