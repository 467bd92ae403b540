using System.Collections.Concurrent;
using Interceptor.Linux;
using Interceptor.Smtp.Session;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Finds the process behind a connection (pid, executable, working directory) in the background, so an
/// admin can find the script that sent the spam. A /proc walk costs milliseconds, so it is rationed: a
/// result is reused for the same user for a few seconds, at most a few walks run per second, and when
/// the budget is spent the connection simply goes without (best effort, never on the hot path).
/// </summary>
public sealed class ProcessAttribution
{
    private static readonly TimeSpan ReuseFor = TimeSpan.FromSeconds(5);
    private const int WalksPerSecond = 20;
    private readonly ConcurrentDictionary<uint, (long At, SocketProcess? Process)> _recent = new();
    private int _walking;
    private long _windowStart;
    private int _walksInWindow;

    /// <summary>Starts the lookup; <see cref="ConnectionOrigin.Process"/> is filled in when (if) it finishes.</summary>
    public void Begin(ConnectionOrigin origin, ulong inode)
    {
        var now = Environment.TickCount64;

        // The process runs as the socket's real uid, which for a sub-UID is not the owner charged for it.
        var socketUid = origin.SubordinateUid ?? origin.Uid;
        if (_recent.TryGetValue(socketUid, out var cached) && now - cached.At < ReuseFor.TotalMilliseconds && cached.Process is not null)
        {
            origin.Process = cached.Process.ToString();
            return;
        }

        if (!TakeBudget(now) || Interlocked.CompareExchange(ref _walking, 1, 0) != 0)
        {
            return;
        }

        _ = Task.Run(() =>
        {
            try
            {
                var process = SocketProcess.Find(inode, socketUid);
                _recent[socketUid] = (Environment.TickCount64, process);
                if (process is not null)
                {
                    origin.Process = process.ToString();
                }
            }
            finally
            {
                Volatile.Write(ref _walking, 0);
            }
        });
    }

    private bool TakeBudget(long now)
    {
        lock (_recent)
        {
            if (now - _windowStart >= 1000)
            {
                _windowStart = now;
                _walksInWindow = 0;
            }

            return ++_walksInWindow <= WalksPerSecond;
        }
    }
}
