using System.Net;
using System.Net.NetworkInformation;

namespace Interceptor.Daemon.Attribution;

/// <summary>This host's own addresses, re-read at most every few seconds (interfaces change rarely, connections arrive often).</summary>
public sealed class HostAddresses
{
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(10);
    private readonly Lock _lock = new();
    private IReadOnlySet<IPAddress> _addresses = new HashSet<IPAddress>();
    private long _readAt = long.MinValue;

    public IReadOnlySet<IPAddress> Current()
    {
        lock (_lock)
        {
            if (Environment.TickCount64 - _readAt > MaxAge.TotalMilliseconds || _readAt == long.MinValue)
            {
                _addresses = NetworkInterface.GetAllNetworkInterfaces()
                    .SelectMany(i => i.GetIPProperties().UnicastAddresses)
                    .Select(a => a.Address)
                    .ToHashSet();
                _readAt = Environment.TickCount64;
            }

            return _addresses;
        }
    }
}
