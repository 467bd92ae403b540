using Interceptor.Daemon.Maintenance;
using System.Diagnostics.Metrics;
using Interceptor.Core.Metrics;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// Interception's figures (meter <c>Interceptor.Intercept</c>), read when observed: SMTP sessions open, the listener
/// lockdown (issue 12.1: the table refuses instead of redirecting), restorations of a changed or missing table, the
/// checks that had to list the tables, and the pace of a flood among others (Fairness.*).
/// Each series exists once its source does (the listener, the table check).
/// </summary>
public sealed class InterceptMetrics : IMetricsSource, IDisposable
{
    public const string MeterName = "Interceptor.Intercept";

    public InterceptMetrics()
    {
        Meter.CreateObservableGauge("smtpi_active_sessions", () => Observe(ActiveSessions), description: "SMTP sessions open now");
        Meter.CreateObservableGauge("smtpi_listener_lockdown", () => Observe(Watchdog, w => w.Lockdown is null ? 0 : 1),
            description: "1 while the table refuses intercepted connections instead of redirecting them");
        Meter.CreateObservableCounter("smtpi_table_restorations_total", () => Observe(Watchdog, w => w.Restorations),
            description: "Times the table was found missing or altered and restored");
        Meter.CreateObservableGauge("smtpi_table_changes_heard", () => Observe(Watchdog, w => w.HearsChanges ? 1 : 0),
            description: "1 while the kernel's nftables change notifications are heard (a deleted table is restored at once)");
        Meter.CreateObservableCounter("smtpi_table_listings_total", () => Observe(Watchdog, w => w.Listings),
            description: "Table checks that read the tables back with nft (the others found the ruleset unchanged)");
        Meter.CreateObservableGauge("smtpi_flood_pace_percent", () => Observe(FloodPace, p => (int)Math.Round((p.Share ?? 0) * 100)),
            description: "The share of one core (percent) a user flooding among others may take now, while the CPU is contended; 0: not paced");
        Meter.CreateObservableCounter("smtpi_flood_holds_total", () => FloodPace is { } pace ? [new Measurement<long>(pace().Holds)] : Array.Empty<Measurement<long>>(),
            description: "Pace windows in which a paced flood's work waited, its share spent");
    }

    public Meter Meter { get; } = new(MeterName);

    /// <summary>The intercept listener's open sessions, once it exists.</summary>
    public Func<int>? ActiveSessions { get; set; }

    /// <summary>The table check, once it exists.</summary>
    public TableWatchdog? Watchdog { get; set; }

    /// <summary>The pace of a flood among others (the listener's scheduler), once the listener exists.</summary>
    public Func<(double? Share, long Holds)>? FloodPace { get; set; }

    /// <summary>Nothing to zero: every figure here is observed.</summary>
    public void RecordZeros()
    {
    }

    public void Dispose() => Meter.Dispose();

    private static IEnumerable<Measurement<int>> Observe(Func<int>? source) => source is null ? [] : [new Measurement<int>(source())];

    private static IEnumerable<Measurement<int>> Observe(Func<(double? Share, long Holds)>? pace, Func<(double? Share, long Holds), int> read) =>
        pace is null ? [] : [new Measurement<int>(read(pace()))];

    private static IEnumerable<Measurement<int>> Observe(TableWatchdog? watchdog, Func<TableWatchdog, int> read) =>
        watchdog is null ? [] : [new Measurement<int>(read(watchdog))];
}
