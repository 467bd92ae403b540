using System.Collections.Concurrent;
using Interceptor.Core.Threading;
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
    internal static readonly TimeSpan ReuseFor = TimeSpan.FromSeconds(5);
    private const int WalksPerSecond = 20;

    /// <summary>
    /// Results kept at most. Keyed by the socket's uid, which a customer with subordinate UIDs picks from 65,536 of
    /// them, each result holding paths of its choosing: without a bound, one customer grew this by 20 entries a second.
    /// </summary>
    internal const int MaxRemembered = 1024;
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

        _ = ThreadDemotion.RunNormal(() =>
        {
            try
            {
                var process = SocketProcess.Find(inode, socketUid);
                Remember(socketUid, Environment.TickCount64, process);
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

    /// <summary>Results held now.</summary>
    internal int Remembered => _recent.Count;

    /// <summary>Keeps a walk's result for <see cref="ReuseFor"/>; past <see cref="MaxRemembered"/>, drops what has expired, and
    /// everything if that is not enough (a cache: the next connection of a dropped uid walks again, within the budget).</summary>
    internal void Remember(uint socketUid, long now, SocketProcess? process)
    {
        _recent[socketUid] = (now, process);
        if (_recent.Count <= MaxRemembered)
        {
            return;
        }

        foreach (var (uid, entry) in _recent)
        {
            if (now - entry.At >= ReuseFor.TotalMilliseconds)
            {
                _recent.TryRemove(uid, out _);
            }
        }

        if (_recent.Count > MaxRemembered)
        {
            _recent.Clear();
        }
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
