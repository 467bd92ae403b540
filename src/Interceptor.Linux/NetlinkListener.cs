namespace Interceptor.Linux;

/// <summary>What a <see cref="NetlinkListener"/> heard: a datagram (whole), a wait that timed out, or lost datagrams.</summary>
internal delegate void NetlinkNoticeHandler(NetlinkNotice notice, ReadOnlySpan<byte> datagram);

/// <summary>
/// A thread of its own that waits on one netlink socket for what the kernel sends unasked (nf_tables' change notices,
/// NFLOG's packets) and hands each to a handler, until disposed. Wakes every <see cref="PollForStop"/> to see whether it
/// should stop. A socket that fails for good is reported once, and nothing more is heard.
/// </summary>
internal sealed class NetlinkListener : IDisposable
{
    /// <summary>The receive timeout the channel must be opened with.</summary>
    public static readonly TimeSpan PollForStop = TimeSpan.FromMilliseconds(500);

    private readonly NetlinkChannel _channel;
    private readonly NetlinkNoticeHandler _handle;
    private readonly Action<Exception> _failed;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <summary>Starts listening on <paramref name="channel"/>, which it then owns; <paramref name="name"/> names the thread.</summary>
    public NetlinkListener(NetlinkChannel channel, string name, NetlinkNoticeHandler handle, Action<Exception> failed)
    {
        _channel = channel;
        _handle = handle;
        _failed = failed;
        _thread = new Thread(Listen) { IsBackground = true, Name = name };
        _thread.Start();
    }

    private void Listen()
    {
        // A datagram holds a transaction's notices or part of them, or a batch of logged packets; one that does not fit
        // counts as lost.
        var buffer = new byte[64 * 1024];
        try
        {
            while (!_stopping)
            {
                var notice = _channel.ReceiveNotice(buffer, out var length);
                _handle(notice, buffer.AsSpan(0, length));
            }
        }
#pragma warning disable CA1031 // a thread of our own: whatever ends it is reported, never the end of the process
        catch (Exception e)
#pragma warning restore CA1031
        {
            // While stopping it is the socket closed under the thread (Dispose does not wait for ever): nothing to say.
            if (!_stopping)
            {
                _failed(e);
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _thread.Join(PollForStop * 4);
        _channel.Dispose();
    }
}
