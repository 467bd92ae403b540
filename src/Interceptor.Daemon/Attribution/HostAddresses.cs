using System.Net;
using System.Net.NetworkInformation;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// This host's own addresses, read at construction and re-read in the background once they are older than a few seconds
/// (interfaces change rarely, connections arrive often). <see cref="Current"/> never reads them itself: it runs on the
/// accepting socket thread, and .NET's interface listing reads several files (resolv.conf, /proc/net/route, lease files).
/// </summary>
public sealed class HostAddresses
{
    private readonly TimeSpan _maxAge;
    private readonly Func<IReadOnlySet<IPAddress>> _read;
    private IReadOnlySet<IPAddress> _addresses;
    private long _readAt;
    private int _refreshing;

    /// <param name="read">Lists the addresses; the host's interfaces by default (tests pass their own).</param>
    /// <param name="maxAge">How old the list may get before it is re-read; 10 s by default.</param>
    public HostAddresses(Func<IReadOnlySet<IPAddress>>? read = null, TimeSpan? maxAge = null)
    {
        _maxAge = maxAge ?? TimeSpan.FromSeconds(10);
        _read = read ?? ReadInterfaces;
        _addresses = _read();
        _readAt = Environment.TickCount64;
    }

    /// <summary>Refreshes made so far (tests).</summary>
    public int Refreshes { get; private set; }

    /// <summary>The addresses as last read; starts a re-read in the background when they are older than the max age.</summary>
    public IReadOnlySet<IPAddress> Current()
    {
        if (Environment.TickCount64 - Volatile.Read(ref _readAt) > _maxAge.TotalMilliseconds && Interlocked.CompareExchange(ref _refreshing, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static self => self.Refresh(), this, preferLocal: false);
        }

        return Volatile.Read(ref _addresses);
    }

    private void Refresh()
    {
        try
        {
            Volatile.Write(ref _addresses, _read());
            Refreshes++;
        }
        catch (NetworkInformationException)
        {
            // The last list stays (retried after the max age): better than refusing every connection meanwhile.
        }
        finally
        {
            Volatile.Write(ref _readAt, Environment.TickCount64);
            Volatile.Write(ref _refreshing, 0);
        }
    }

    private static HashSet<IPAddress> ReadInterfaces() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .ToHashSet();
}
