using System.Diagnostics.Metrics;
using Interceptor.Core.Metrics;
using Interceptor.Core.Pool;

namespace Interceptor.Daemon.Pool;

/// <summary>
/// The relay pool's figures (meter <c>Interceptor.Pool</c>), one series per relay: its state (1 for the state it is in),
/// the messages it carried and the failures it had, and the messages of the last hour. Empty while no pool is configured.
/// </summary>
public sealed class PoolMetrics : IMetricsSource, IDisposable
{
    public const string MeterName = "Interceptor.Pool";

    /// <summary>The values of the <c>state</c> label.</summary>
    public static readonly IReadOnlyList<string> States = ["in_rotation", "reserve", "burned", "down"];

    private readonly Counter<long> _messages;
    private readonly Counter<long> _failures;

    public PoolMetrics()
    {
        _messages = Meter.CreateCounter<long>("smtpi_relay_messages_total", description: "Messages a relay of the pool accepted");
        _failures = Meter.CreateCounter<long>("smtpi_relay_failures_total", description: "Messages a relay of the pool failed after it was chosen");
        Meter.CreateObservableGauge("smtpi_relay_state", ObserveStates,
            description: "1 for the state each relay (and, as relay=\"@host\", the host in Auto mode) is in: in_rotation, reserve, burned or down");
        Meter.CreateObservableGauge("smtpi_relay_messages_last_hour", ObserveLastHour, description: "Messages a relay of the pool accepted in the last hour");
    }

    public Meter Meter { get; } = new(MeterName);

    /// <summary>The pool's states, once a pool exists.</summary>
    public Func<IReadOnlyList<RelayState>>? Snapshot { get; set; }

    /// <summary>The per-relay hour counts, once a pool exists.</summary>
    public RelayHourCounter? Hour { get; set; }

    /// <summary>The relays' names, for the counters at 0 from the start.</summary>
    public IReadOnlyList<string> Relays { get; set; } = [];

    public TimeProvider Time { get; set; } = TimeProvider.System;

    public void Carried(string relay) => _messages.Add(1, new KeyValuePair<string, object?>("relay", relay));

    public void Failed(string relay) => _failures.Add(1, new KeyValuePair<string, object?>("relay", relay));

    public void RecordZeros()
    {
        foreach (var relay in Relays)
        {
            _messages.Add(0, new KeyValuePair<string, object?>("relay", relay));
            _failures.Add(0, new KeyValuePair<string, object?>("relay", relay));
        }
    }

    public void Dispose() => Meter.Dispose();

    /// <summary>The label of a state: a relay in rotation or reserve whose backoff runs is "down".</summary>
    public static string StateOf(RelayState state, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(state);
        return state.Status == RelayStatus.Burned ? "burned"
            : state.DownUntil is { } until && until > now ? "down"
            : state.Status == RelayStatus.InRotation ? "in_rotation"
            : "reserve";
    }

    private IEnumerable<Measurement<int>> ObserveStates()
    {
        if (Snapshot is not { } snapshot)
        {
            yield break;
        }

        var now = Time.GetUtcNow();
        foreach (var state in snapshot())
        {
            var current = StateOf(state, now);
            foreach (var label in States)
            {
                yield return new Measurement<int>(label == current ? 1 : 0,
                    new KeyValuePair<string, object?>("relay", state.Name), new KeyValuePair<string, object?>("state", label));
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveLastHour() =>
        Hour is { } hour ? Relays.Select(r => new Measurement<long>(hour.LastHour(r), new KeyValuePair<string, object?>("relay", r))) : [];
}
