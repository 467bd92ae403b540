using Interceptor.Core.Threading;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>
/// Gives the upstream session of a client that stays silent between transactions back to its route
/// (Relay.IdleClientReleaseSeconds), so a script that connects and then waits pins neither a connection to the MX nor
/// a descriptor here; the lease takes one again at the next MAIL. The session arms it before each wait for a command
/// outside a transaction and disarms it when the wait ends. The release itself runs off the session's flow, while the
/// session is parked in that wait; disarming waits for a release under way, so the lease is never used by two at once.
/// </summary>
internal sealed class IdleUpstreamRelease : IAsyncDisposable
{
    private readonly UpstreamLease _lease;
    private readonly TimeSpan _after;
    private readonly TimeProvider _time;
    private readonly ConnectionOrigin _origin;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private ITimer? _timer;
    private bool _armed;
    private long _armedAt;
    private Task? _releasing;

    /// <param name="after">How long a client may be silent before its upstream goes back; zero: never.</param>
    public IdleUpstreamRelease(UpstreamLease lease, TimeSpan after, TimeProvider time, ConnectionOrigin origin, ILogger logger)
    {
        _lease = lease;
        _after = after;
        _time = time;
        _origin = origin;
        _logger = logger;
    }

    /// <summary>Upstream sessions given back by this session so far.</summary>
    public int Released { get; private set; }

    /// <summary>Starts the clock before a wait for the client's next command; nothing when no session is held between transactions.</summary>
    public void Arm()
    {
        if (_after <= TimeSpan.Zero || !_lease.HoldsIdleSession)
        {
            return;
        }

        // One timer per session, made on its first idle wait and re-aimed on each (Change resets the due time): a
        // timer left from a wait that ended finds the release disarmed and does nothing.
        _timer ??= _time.CreateTimer(static state => ((IdleUpstreamRelease)state!).Fire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        lock (_gate)
        {
            _armed = true;
            _armedAt = _time.GetTimestamp();
        }

        _timer.Change(_after, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Stops the clock once the wait ended; completes when a release it started is done.</summary>
    public ValueTask DisarmAsync()
    {
        if (_timer is null)
        {
            return ValueTask.CompletedTask;
        }

        Task? releasing;
        lock (_gate)
        {
            _armed = false;
            releasing = _releasing;
            _releasing = null;
        }

        return releasing is null ? ValueTask.CompletedTask : new ValueTask(releasing);
    }

    private void Fire()
    {
        lock (_gate)
        {
            if (!_armed)
            {
                return;
            }

            // A callback queued by an earlier wait still runs after Change re-aimed the timer, and timers tick more
            // coarsely than the clock: the client's silence, not the callback, decides. Too soon: aim at what is left.
            var left = _after - _time.GetElapsedTime(_armedAt);
            if (left > TimeSpan.Zero)
            {
                _timer!.Change(TimeSpan.FromMilliseconds(Math.Ceiling(left.TotalMilliseconds)), Timeout.InfiniteTimeSpan);
                return;
            }

            _armed = false;
            // Off the timer's thread: giving back may send RSET or QUIT and wait for the reply.
            _releasing = ThreadDemotion.RunNormal(ReleaseAsync);
        }
    }

    private async Task ReleaseAsync()
    {
        try
        {
            if (await _lease.ReleaseIdleAsync() is { } upstream)
            {
                Released++;
                SessionLog.IdleUpstreamReleased(_logger, _origin.Uid, _origin.User, _after.TotalSeconds, upstream);
            }
        }
        catch (Exception e) when (e is UpstreamException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The lease let go of the session before giving it back: the next MAIL opens a new one either way.
            SessionLog.IdleUpstreamReleaseFailed(_logger, _origin.Uid, _origin.User, e.Message);
        }
    }

    /// <summary>Disarms, waits for a release under way and stops the timer, before the session gives its lease back.</summary>
    public async ValueTask DisposeAsync()
    {
        await DisarmAsync();
        if (_timer is not null)
        {
            await _timer.DisposeAsync();
        }
    }
}
