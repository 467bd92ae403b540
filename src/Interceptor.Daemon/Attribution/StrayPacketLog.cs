using System.Net;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Names the customers behind the packets the guard table refuses for having escaped the redirect: a SYN that conntrack
/// files under a connection it already has (the port of someone's ended connection, a reply to a packet forged from a mail
/// server), or an invalid or untracked packet. The guard's two rules for them log each packet to the NFLOG group
/// Interception.StrayLogGroup; the kernel sends the uid that owns the sending socket with it. Each becomes a refusal in
/// the <see cref="RefusalLog"/> (first one at once, then a summary per interval, per uid; a sub-UID is charged to its
/// owner) and in smtpi_connections_refused_total. The kernel refuses them whether or not this runs. A group socket that
/// fails for good is closed (so that it no longer holds the group) and bound again after <see cref="RebindAfter"/>, then
/// at doubling intervals up to five minutes until the kernel takes it.
/// </summary>
public sealed class StrayPacketLog(ushort group, RefusalLog refusals, SubordinateUidFile subordinates, ILogger logger, AttributionMetrics? metrics = null)
    : IDisposable
{
    /// <summary>The causes, as in the log and the metric's reason label.</summary>
    public const string StraySyn = "stray_syn";

    public const string StrayPacket = "stray_packet";

    // At most one line a minute about lost packets, and one about packets that could not be named.
    private const long QuietMs = 60_000;

    private static readonly IPEndPoint Unknown = new(IPAddress.Any, 0);
    private static readonly TimeSpan RebindAtMost = TimeSpan.FromMinutes(5);

    // A socket that fails sooner than this after its bind is failing again: its next wait is doubled, not started over.
    private static readonly TimeSpan HeldLongEnough = TimeSpan.FromMinutes(1);
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private IDisposable? _listener;
    private TimeSpan _rebindAfter = TimeSpan.FromSeconds(5);
    private TimeSpan _lastWait;
    private DateTimeOffset _boundAt;
    private long _lostAt = -QuietMs;
    private long _failedAt = -QuietMs;
    private long _heard;

    /// <summary>Packets taken from the group (ours and any other rule's that logs to it).</summary>
    public long Heard => Interlocked.Read(ref _heard);

    /// <summary>How the group is bound: the kernel's NFLOG (<see cref="NflogListener.Start"/>), or a test's stand-in. Its
    /// last argument is called once, from the listener's thread, when the socket fails for good.</summary>
    public Func<ushort, Action<LoggedPacket>, Action, Action<Exception>, IDisposable> Bind { get; init; } = NflogListener.Start;

    /// <summary>The wait before a failed group socket is bound again: doubled on each refusal, and after a socket that
    /// failed within a minute of its bind, up to five minutes. Above zero.</summary>
    public TimeSpan RebindAfter
    {
        get => _rebindAfter;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
            _rebindAfter = value;
        }
    }

    /// <summary>How a rebind waits (<see cref="Task.Delay(TimeSpan, CancellationToken)"/>; a test's records the waits).</summary>
    public Func<TimeSpan, CancellationToken, Task> Delay { get; init; } = Task.Delay;

    /// <summary>The clock that tells a socket that failed soon after its bind (a test's moves by hand).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Binds the group, and makes sure the kernel takes the guard's log statements (a kernel may have NFLOG and no nft
    /// log, whose refusal would fail the whole install). When either fails, the reason is logged and the daemon runs on
    /// without the names: the table is then installed without the log statements (false), which would otherwise hand the
    /// packets to whoever has the group. The refusals themselves are the kernel's either way.
    /// </summary>
    public async Task<bool> StartAsync(RulesetManager rules, RulesetSpec spec, CancellationToken cancellationToken)
    {
        if (group == 0 || !TryBind())
        {
            return false;
        }

        if (await rules.FindInstallProblemAsync(spec with { StrayLogGroup = group }, cancellationToken) is { } refused
            && await rules.FindInstallProblemAsync(spec with { StrayLogGroup = 0 }, cancellationToken) is null)
        {
            // Nothing will log to the group: never bound again either.
            lock (_gate)
            {
                _stopping.Cancel();
                _listener?.Dispose();
                _listener = null;
            }

            logger.StrayLogUnavailable(group, $"the kernel takes the table only without the guard's log statements (no nft log?): {refused}");
            return false;
        }

        return true;
    }

    /// <summary>Binds the group and listens (what <see cref="StartAsync"/> does before its check of the table); false,
    /// logged, when the kernel refuses.</summary>
    internal bool TryBind()
    {
        try
        {
            lock (_gate)
            {
                _listener = Bind(group, Logged, Lost, Failed);
                _boundAt = Time.GetUtcNow();
            }

            return true;
        }
        catch (LinuxInteropException e)
        {
            logger.StrayLogUnavailable(group, e.Message);
            return false;
        }
    }

    /// <summary>One packet of the group (on the listener's thread, which may block on NSS and /etc/subuid).</summary>
    public void Logged(LoggedPacket packet)
    {
        Interlocked.Increment(ref _heard);
        var (cause, reason) = packet.Prefix switch
        {
            RulesetSpec.StraySynLogPrefix => (StraySyn,
                "a SYN to a mail port that conntrack files under a connection it already has, so no NAT rule saw it: reset by the guard table (a customer reaching for the mail server past the redirect, through the port of someone's ended connection or a reply to a forged packet; rarely, a client's port reused too soon)"),
            RulesetSpec.StrayPacketLogPrefix => (StrayPacket,
                "a packet to a mail port that conntrack cannot place or does not track, so no NAT rule saw it: dropped by the guard table (a customer reaching for the mail server past the redirect, or a late segment of a connection that had already ended)"),
            _ => (null, null),
        };
        if (cause is null)
        {
            // Another rule of the host logs to our group: not ours to report.
            return;
        }

        metrics?.ConnectionRefused(cause);
        try
        {
            var (owner, note) = UidAttribution.ChargedForLog(subordinates, packet.Uid);
            refusals.Refused(cause, owner, packet.Source ?? Unknown, packet.Destination, note is null ? reason! : $"{reason}; {note}");
        }
#pragma warning disable CA1031 // on the listener's thread: whatever fails for one packet must not end the naming
        catch (Exception e)
#pragma warning restore CA1031
        {
            // NSS or /etc/subuid failed for this one (sssd down, out of descriptors, an unreadable file): the next packet is
            // tried afresh, so that whoever can make one lookup fail cannot stop the naming for good.
            if (Due(ref _failedAt))
            {
                logger.StrayPacketNotNamed(packet.Uid, cause, e.Message);
            }
        }
    }

    // On the failed listener's thread, which closing the socket waits for: the rest runs after a wait, on the pool. A socket
    // that fails again soon after its bind waits twice as long as the last time, so a socket that keeps failing costs a
    // pair of lines every five minutes, not every five seconds.
    private void Failed(Exception e)
    {
        TimeSpan wait;
        lock (_gate)
        {
            wait = Time.GetUtcNow() - _boundAt < HeldLongEnough && _lastWait > TimeSpan.Zero ? Doubled(_lastWait) : RebindAfter;
        }

        logger.StrayLogFailed(group, e.Message, wait.TotalSeconds);
        _ = RebindAsync(wait);
    }

    // Closes the failed socket, whose group the kernel keeps for it until then, and binds the group anew; a refusal (another
    // process took the group meanwhile, out of descriptors) is logged once and retried at doubling intervals.
    private async Task RebindAsync(TimeSpan wait)
    {
        var refusals = 0;
        while (true)
        {
            try
            {
                await Delay(wait, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            lock (_gate)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                try
                {
                    _listener?.Dispose();
                    _listener = null;
                    _listener = Bind(group, Logged, Lost, Failed);
                    _boundAt = Time.GetUtcNow();
                    _lastWait = wait;
                    logger.StrayLogBoundAgain(group, refusals);
                    return;
                }
#pragma warning disable CA1031 // retried: whatever refuses the bind (or fails the close) must not end the retries
                catch (Exception e)
#pragma warning restore CA1031
                {
                    wait = Doubled(wait);
                    if (refusals++ == 0)
                    {
                        logger.StrayLogRebindRefused(group, e.Message, wait.TotalSeconds, RebindAtMost.TotalMinutes);
                    }
                }
            }
        }
    }

    private static TimeSpan Doubled(TimeSpan wait) => wait * 2 < RebindAtMost ? wait * 2 : RebindAtMost;

    // The kernel could not queue some packets to us (our socket's buffer was full): at most one line a minute says so.
    private void Lost()
    {
        if (Due(ref _lostAt))
        {
            logger.StrayPacketsLost(group);
        }
    }

    // True at most once a minute per kind of trouble (all on the listener's thread).
    private static bool Due(ref long last)
    {
        var now = Environment.TickCount64;
        if (now - last < QuietMs)
        {
            return false;
        }

        last = now;
        return true;
    }

    public void Dispose()
    {
        // The token source is cancelled, never disposed: a listener that fails after this still reads its token (it has
        // no timer to free).
        lock (_gate)
        {
            _stopping.Cancel();
            _listener?.Dispose();
            _listener = null;
        }
    }
}
