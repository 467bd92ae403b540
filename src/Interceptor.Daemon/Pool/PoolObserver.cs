using System.Threading.Channels;
using Interceptor.Core.Pool;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Pool;

/// <summary>
/// The daemon's <see cref="IRelayPoolObserver"/>: persists every changed relay state, logs each pool event, runs the
/// alert command and counts per relay. Called on the session's path, so it only logs, counts and queues there: the
/// store and the alert command run on two loops of their own (a slow alert never delays a save).
/// </summary>
/// <remarks>
/// Saves are never lost: the newest unsaved state of each relay waits in <see cref="_pending"/> until a save of it
/// succeeds (a later state of the same relay replaces an older one, which is all the store keeps anyway); a failing
/// store is retried with a growing pause. Alerts are bounded (<see cref="MaxQueuedAlerts"/>) and a refused login alerts
/// at most once per relay and user in <see cref="LoginAlertInterval"/>: a site with a wrong password sends on.
/// </remarks>
public sealed class PoolObserver : IRelayPoolObserver, IHostedService, IAsyncDisposable
{
    public const int MaxQueuedAlerts = 64;

    public static readonly TimeSpan LoginAlertInterval = TimeSpan.FromMinutes(15);

    private static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestRetry = TimeSpan.FromSeconds(30);

    private readonly Func<IReadOnlyList<RelayState>, CancellationToken, Task> _save;
    private readonly Func<string, IReadOnlyDictionary<string, string>, CancellationToken, Task> _alert;
    private readonly PoolMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, RelayState> _pending = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<(string Relay, string User), DateTimeOffset> _loginAlerts = [];
    private readonly Lock _lock = new();
    private readonly Channel<bool> _saveSignal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Channel<(string Event, Dictionary<string, string> Facts)> _alerts =
        Channel.CreateBounded<(string, Dictionary<string, string>)>(new BoundedChannelOptions(MaxQueuedAlerts) { FullMode = BoundedChannelFullMode.Wait });

    private readonly CancellationTokenSource _stop = new();
    private Task _saving = Task.CompletedTask;
    private Task _alerting = Task.CompletedTask;
    private TaskCompletionSource _saved = NewSignal();

    /// <param name="save">Stores relay states in one commit (<c>SqliteStateStore.SaveRelayStatesAsync</c>).</param>
    /// <param name="alert">Runs Alerts.Command with SMTPI_EVENT set to the first argument and the facts.</param>
    public PoolObserver(
        Func<IReadOnlyList<RelayState>, CancellationToken, Task> save,
        Func<string, IReadOnlyDictionary<string, string>, CancellationToken, Task> alert,
        RelayHourCounter hour,
        PoolMetrics metrics,
        ILogger logger,
        TimeProvider time)
    {
        _save = save;
        _alert = alert;
        Hour = hour;
        _metrics = metrics;
        _logger = logger;
        _time = time;
    }

    public RelayHourCounter Hour { get; }

    /// <summary>Relay states not stored yet (0 once the store has them all).</summary>
    public int Unsaved
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    public void Publish(PoolUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (update.Changed.Count > 0)
        {
            lock (_lock)
            {
                foreach (var state in update.Changed)
                {
                    _pending[state.Name] = state;
                }
            }

            _saveSignal.Writer.TryWrite(true);
        }

        foreach (var poolEvent in update.Events)
        {
            Announce(poolEvent);
        }
    }

    public void LoginRefused(string relay, string user, string reply)
    {
        _logger.LoginRefused(relay, user, reply);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_loginAlerts.TryGetValue((relay, user), out var last) && now - last < LoginAlertInterval)
            {
                return;
            }

            _loginAlerts[(relay, user)] = now;
        }

        QueueAlert("relay-login-refused", relay, $"relay {relay} refused the login of user {user}: {reply}", user);
    }

    public void Carried(string relay)
    {
        Hour.Add(relay);
        _metrics.Carried(relay);
    }

    public void Failed(string relay, string reason)
    {
        _logger.RelayFailed(relay, reason);
        _metrics.Failed(relay);
    }

    /// <summary>A DNSBL lookup that gave no usable answer (127.255.255.x, SERVFAIL, no answer): logged by the caller, alerted here.</summary>
    public void DnsblError(string relay, string result) =>
        QueueAlert("dnsbl-error", relay, $"DNSBL lookup of {relay} gave no usable answer ({result}); not counted as a listing", null);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _saving = Task.Run(() => SaveLoopAsync(_stop.Token), CancellationToken.None);
        _alerting = Task.Run(() => AlertLoopAsync(_stop.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>Waits (within the host's stop time) until every pending state is stored; the loops run on until disposal,
    /// for an admin's change that arrives while the daemon stops.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => FlushAsync(cancellationToken);

    /// <summary>Returns once nothing is pending (or <paramref name="cancellationToken"/> ends the wait).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task saved;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    return;
                }

                saved = _saved.Task;
            }

            _saveSignal.Writer.TryWrite(true);
            await saved.WaitAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            try
            {
                await FlushAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                // The store is gone; what it did not take is logged by the save loop already.
            }
        }

        await _stop.CancelAsync();
        _alerts.Writer.TryComplete();
        await Task.WhenAll(_saving, _alerting).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private void Announce(PoolEvent e)
    {
        var host = e.Relay == RelayPool.HostKey;
        switch (e.Kind)
        {
            case PoolEventKind.Burned when host:
                _logger.HostBurned(e.Reason);
                QueueAlert("host-burned", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.Burned:
                _logger.RelayBurned(e.Relay, e.Reason);
                QueueAlert("relay-burned", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.Promoted:
                _logger.RelayPromoted(e.Relay, e.Reason);
                QueueAlert("relay-promoted", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.ReserveEmpty:
                _logger.ReserveEmpty(e.Relay, e.Reason);
                QueueAlert("relay-reserve-empty", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.Returned or PoolEventKind.Restored when host:
                _logger.HostReturned(e.Reason);
                QueueAlert("host-restored", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.Returned:
                _logger.RelayReturned(e.Relay, e.Reason);
                QueueAlert("relay-returned", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.Restored:
                _logger.RelayRestored(e.Relay, e.Reason);
                QueueAlert("relay-restored", e.Relay, e.Reason, null);
                break;
            case PoolEventKind.Down:
                // A backoff is routine (the next relay took the message): logged, counted, no alert.
                _logger.RelayDown(e.Relay, e.Reason);
                break;
        }
    }

    private void QueueAlert(string eventName, string relay, string reason, string? user)
    {
        var facts = new Dictionary<string, string>
        {
            ["SMTPI_RELAY"] = relay == RelayPool.HostKey ? "host" : relay,
            ["SMTPI_REASON"] = reason,
            ["SMTPI_SINCE"] = _time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        };
        if (user is not null)
        {
            facts["SMTPI_USER"] = user;
        }

        if (!_alerts.Writer.TryWrite((eventName, facts)))
        {
            _logger.AlertDropped(eventName, relay, MaxQueuedAlerts);
        }
    }

    private async Task AlertLoopAsync(CancellationToken cancellationToken)
    {
        // Off the socket threads (alert commands' output comes through pipes the socket engine polls): see ThreadPoolContext.
        await ThreadPoolContext.SwitchTo();

        try
        {
            await foreach (var (eventName, facts) in _alerts.Reader.ReadAllAsync(cancellationToken))
            {
                await _alert(eventName, facts, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private async Task SaveLoopAsync(CancellationToken cancellationToken)
    {
        // Off the socket threads: see ThreadPoolContext.
        await ThreadPoolContext.SwitchTo();

        var retry = TimeSpan.Zero;
        try
        {
            while (await _saveSignal.Reader.WaitToReadAsync(cancellationToken))
            {
                _saveSignal.Reader.TryRead(out _);
                List<RelayState> batch;
                lock (_lock)
                {
                    batch = [.. _pending.Values];
                }

                if (batch.Count == 0)
                {
                    Signal();
                    continue;
                }

                try
                {
                    await _save(batch, cancellationToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    retry = retry == TimeSpan.Zero ? FirstRetry : TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, LongestRetry.Ticks));
                    _logger.SaveFailed(batch.Count, e.Message, retry.TotalSeconds);
                    await Task.Delay(retry, _time, cancellationToken);
                    _saveSignal.Writer.TryWrite(true);
                    continue;
                }

                if (retry != TimeSpan.Zero)
                {
                    retry = TimeSpan.Zero;
                    _logger.SaveRecovered(batch.Count);
                }

                lock (_lock)
                {
                    // A state that changed again meanwhile stays pending: the next round stores the newer one.
                    foreach (var state in batch.Where(s => _pending.TryGetValue(s.Name, out var now) && ReferenceEquals(now, s)))
                    {
                        _pending.Remove(state.Name);
                    }
                }

                Signal();
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping; DisposeAsync flushed what it could.
        }
    }

    /// <summary>Wakes every <see cref="FlushAsync"/> waiting for a save round to end.</summary>
    private void Signal()
    {
        TaskCompletionSource done;
        lock (_lock)
        {
            done = _saved;
            _saved = NewSignal();
        }

        done.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
