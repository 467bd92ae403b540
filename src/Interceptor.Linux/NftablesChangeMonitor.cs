namespace Interceptor.Linux;

/// <summary>
/// Hears the kernel's nf_tables change notifications (what <c>nft monitor</c> prints) in the network namespace it was
/// started in, and calls back as soon as a committed transaction touched one of the watched inet tables, so that a
/// table deleted by <c>nft flush ruleset</c> (a firewall reload) is noticed at once instead of at the next periodic
/// check. Notifications that were lost (a full socket queue) count as a change. Changes to other tables are ignored,
/// so another tool's busy sets (fail2ban's bans) cost nothing but the wake-up.
/// </summary>
public sealed class NftablesChangeMonitor : IDisposable
{
    private const int NetlinkNetfilter = 12;

    // Wakes the listening thread this often to see whether it should stop.
    private static readonly TimeSpan PollForStop = TimeSpan.FromMilliseconds(500);

    private readonly NetlinkChannel _channel;
    private readonly IReadOnlySet<string> _tables;
    private readonly Action _changed;
    private readonly Action<Exception> _failed;
    private readonly Thread _thread;
    private volatile bool _stopping;
    private long _changes;

    private NftablesChangeMonitor(NetlinkChannel channel, IReadOnlySet<string> tables, Action changed, Action<Exception> failed)
    {
        _channel = channel;
        _tables = tables;
        _changed = changed;
        _failed = failed;
        _thread = new Thread(Listen) { IsBackground = true, Name = "nft changes" };
    }

    /// <summary>Change notifications heard that touched a watched table, or were lost.</summary>
    public long Changes => Interlocked.Read(ref _changes);

    /// <summary>
    /// Joins NFNLGRP_NFTABLES in the calling thread's network namespace (needs CAP_NET_ADMIN) and starts listening on a
    /// thread of its own. <paramref name="changed"/> runs on that thread and must not block; <paramref name="failed"/>
    /// runs once if the socket fails for good, after which nothing more is heard.
    /// </summary>
    /// <exception cref="LinuxInteropException">The socket could not be opened or could not join the group.</exception>
    public static NftablesChangeMonitor Start(IEnumerable<string> inetTables, Action changed, Action<Exception> failed)
    {
        ArgumentNullException.ThrowIfNull(inetTables);
        ArgumentNullException.ThrowIfNull(changed);
        ArgumentNullException.ThrowIfNull(failed);
        var channel = NetlinkChannel.Open(NetlinkNetfilter, "NETLINK_NETFILTER", PollForStop);
        try
        {
            channel.JoinGroup(NftablesMessage.ChangeGroup);
        }
        catch
        {
            channel.Dispose();
            throw;
        }

        var monitor = new NftablesChangeMonitor(channel, new HashSet<string>(inetTables, StringComparer.Ordinal), changed, failed);
        monitor._thread.Start();
        return monitor;
    }

    private void Listen()
    {
        // A datagram holds one transaction's notifications or part of them (a flush's come together); a rule's message is
        // a few KiB at most. One that does not fit counts as lost, so as a change.
        var buffer = new byte[64 * 1024];
        try
        {
            while (!_stopping)
            {
                var notice = _channel.ReceiveNotice(buffer, out var length);
                if (notice == NetlinkNotice.TimedOut
                    || (notice == NetlinkNotice.Datagram && NftablesMessage.Classify(buffer.AsSpan(0, length), _tables) == NftablesChange.None))
                {
                    continue;
                }

                Interlocked.Increment(ref _changes);
                _changed();
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
