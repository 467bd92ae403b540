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

    private readonly IReadOnlySet<string> _tables;
    private readonly Action _changed;
    private NetlinkListener? _listener;
    private long _changes;

    private NftablesChangeMonitor(IReadOnlySet<string> tables, Action changed)
    {
        _tables = tables;
        _changed = changed;
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
        var channel = NetlinkChannel.Open(NetlinkNetfilter, "NETLINK_NETFILTER", NetlinkListener.PollForStop);
        try
        {
            channel.JoinGroup(NftablesMessage.ChangeGroup);
        }
        catch
        {
            channel.Dispose();
            throw;
        }

        var monitor = new NftablesChangeMonitor(new HashSet<string>(inetTables, StringComparer.Ordinal), changed);
        monitor._listener = new NetlinkListener(channel, "nft changes", monitor.Heard, failed);
        return monitor;
    }

    private void Heard(NetlinkNotice notice, ReadOnlySpan<byte> datagram)
    {
        if (notice == NetlinkNotice.TimedOut || (notice == NetlinkNotice.Datagram && NftablesMessage.Classify(datagram, _tables) == NftablesChange.None))
        {
            return;
        }

        Interlocked.Increment(ref _changes);
        _changed();
    }

    public void Dispose() => _listener?.Dispose();
}
