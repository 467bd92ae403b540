using System.Net;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Logs refused connections (not redirected, local destination, owner unknown, lookup failed) so that no
/// flood can drown the log: per cause and uid, the first refusal is logged at once, with its details; the
/// ones after it are only counted, and every interval a summary line gives their number. A key with no
/// refusal during an interval is forgotten, so the next one is logged at once again. Whatever the rate, each
/// (cause, uid) writes at most two lines per interval, and the counts stay exact (nothing is dropped, only
/// summarised). Thread-safe.
/// </summary>
/// <remarks>
/// Without it, one user making refused connections in a loop wrote 15,000 warning lines a second, and
/// journald's rate limit then dropped the real transaction lines with them. The number of keys is bounded
/// too (<paramref name="maxKeys"/> per cause; further uids share one key per cause), since a user with subordinate
/// UIDs can present thousands of uids.
/// </remarks>
public sealed class RefusalLog(ILogger logger, TimeSpan interval, TimeProvider time, int maxKeys = 1000) : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Cause, uint? Uid), Pending> _pending = [];
    private readonly Dictionary<string, int> _keysPerCause = [];
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    /// <summary>The interval between summaries, as configured (Interception.RefusalSummarySeconds).</summary>
    public TimeSpan Interval => interval;

    /// <summary>Starts writing the summaries every <see cref="Interval"/>.</summary>
    public void Start() => _loop = Task.Run(LoopAsync);

    /// <summary>
    /// Reports one refused connection. <paramref name="cause"/> is a short fixed word (as in the metrics:
    /// "not_redirected", "local_destination", ...); <paramref name="owner"/> is the uid of the client socket
    /// when it could be found; <paramref name="reason"/> is what went wrong. <paramref name="level"/> is that of
    /// every line about this cause (Error for a fault such as a failed lookup).
    /// </summary>
    public void Refused(string cause, uint? owner, IPEndPoint client, IPEndPoint? destination, string reason, LogLevel level = LogLevel.Warning)
    {
        Pending? first = null;
        lock (_lock)
        {
            var key = (cause, owner);
            // Per cause: a user with a thousand sub-UIDs making one kind of refusal must not leave another kind unnamed (the
            // attack review of the stray-packet naming filled the keys with direct connections, then went unnamed past the redirect).
            if (!_pending.ContainsKey(key) && owner is not null && _keysPerCause.GetValueOrDefault(cause) >= maxKeys)
            {
                key = (cause, null); // too many distinct uids: summarise the rest together, as of unknown owner
                owner = null;
            }

            if (_pending.TryGetValue(key, out var pending))
            {
                pending.Count++;
                pending.LastClient = client;
                pending.LastDestination = destination;
                pending.LastReason = reason;
                return;
            }

            first = new Pending(cause, owner, level, time.GetUtcNow());
            _pending[key] = first;
            _keysPerCause[cause] = _keysPerCause.GetValueOrDefault(cause) + 1;
        }

        // Named outside the lock: getpwuid may go to a slow NSS source (LDAP, sssd), and every refusal takes the lock.
        if (first.Uid is { } named)
        {
            first.User = UserDatabase.NameOf(named) ?? $"#{named}";
        }

        // Logged outside the lock: a slow log sink must not serialise every refusal behind it.
        var target = destination?.ToString() ?? "(not redirected)";
        if (first.Uid is { } known)
        {
            logger.RefusedFromUid(level, client, target, known, first.User, reason, cause, (int)interval.TotalSeconds);
        }
        else
        {
            logger.RefusedFromUnknownOwner(level, client, target, reason, cause, (int)interval.TotalSeconds);
        }
    }

    /// <summary>
    /// Writes one summary per key that counted refusals since its last line, and forgets the keys that
    /// counted none. Called every <see cref="Interval"/> by the loop, and at shutdown.
    /// </summary>
    public void Flush()
    {
        List<(Pending Entry, long Count, double Seconds)> summaries = [];
        lock (_lock)
        {
            var now = time.GetUtcNow();
            foreach (var (key, pending) in _pending.ToArray())
            {
                if (pending.Count == 0)
                {
                    _pending.Remove(key);
                    _keysPerCause[key.Cause]--;
                    continue;
                }

                summaries.Add((pending, pending.Count, Math.Round((now - pending.LineAt).TotalSeconds)));
                pending.Count = 0;
                pending.LineAt = now;
            }
        }

        foreach (var (entry, count, seconds) in summaries)
        {
            var target = entry.LastDestination?.ToString() ?? "(not redirected)";
            if (entry.Uid is { } uid)
            {
                var user = entry.User ?? $"#{uid}";
                logger.RefusalSummaryOfUid(entry.Level, count, uid, user, seconds, entry.Cause, entry.LastClient, target, entry.LastReason);
            }
            else
            {
                logger.RefusalSummaryOfUnknownOwners(entry.Level, count, seconds, entry.Cause, entry.LastClient, target, entry.LastReason);
            }
        }
    }

    private async Task LoopAsync()
    {
        // Off the socket threads: see ThreadPoolContext.
        await ThreadPoolContext.SwitchTo();

        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                Flush();
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping; DisposeAsync writes what is left.
        }
    }

    /// <summary>Stops the loop and writes the last summaries, so no count is lost at shutdown.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        Flush();
        _stop.Dispose();
    }

    /// <summary>One (cause, uid): what its last line said, and what was refused since.</summary>
    private sealed class Pending(string cause, uint? uid, LogLevel level, DateTimeOffset lineAt)
    {
        public string Cause { get; } = cause;
        public uint? Uid { get; } = uid;
        /// <summary>Set right after the entry is added (outside the lock); a summary written in between says "#uid".</summary>
        public string? User { get; set; }
        public LogLevel Level { get; } = level;

        /// <summary>When the last line about this key was written (the first one, or the last summary).</summary>
        public DateTimeOffset LineAt { get; set; } = lineAt;

        /// <summary>Refusals since that line, not yet in any line.</summary>
        public long Count { get; set; }

        public IPEndPoint? LastClient { get; set; }
        public IPEndPoint? LastDestination { get; set; }
        public string LastReason { get; set; } = "";
    }
}
