using System.Diagnostics.Metrics;
using Interceptor.Core.Metrics;

namespace Interceptor.Store;

/// <summary>
/// The state store's figures (meter <c>Interceptor.Store</c>): whether its writes succeed, batches committed, and the
/// pruning that holds it under State.MaxBytes. Health is read when observed (no I/O: <see cref="StoreHealth"/>).
/// </summary>
public sealed class StoreMetrics : IMetricsSource, IDisposable
{
    public const string MeterName = "Interceptor.Store";

    private readonly Counter<long> _prunes;
    private readonly Counter<long> _quotaHistoryLost;

    public StoreMetrics()
    {
        _prunes = Meter.CreateCounter<long>("smtpi_store_prunes_total", description: "Times the store was pruned to hold it under State.MaxBytes");
        _quotaHistoryLost = Meter.CreateCounter<long>("smtpi_store_quota_history_lost_total", description: "Prunings that deleted rows the quotas count");

        // Healthy: the last batch was committed and the file is still ours; 0 while writes fail (mail is then still
        // relayed but not recorded, so quotas undercount after a restart). No store yet: no series.
        Meter.CreateObservableGauge("smtpi_store_healthy", ObserveHealthy, description: "1 while the state store's writes succeed, 0 while they fail");
        Meter.CreateObservableCounter("smtpi_store_commits_total", ObserveCommits, description: "Batches committed to the state store since it was opened");
    }

    public Meter Meter { get; } = new(MeterName);

    /// <summary>The state store's health (no I/O), once the store is open.</summary>
    public Func<StoreHealth>? Health { get; set; }

    /// <summary>The store was pruned to hold it under State.MaxBytes; <paramref name="quotaHistoryLost"/>: rows quotas count went too.</summary>
    public void Pruned(bool quotaHistoryLost)
    {
        _prunes.Add(1);
        if (quotaHistoryLost)
        {
            _quotaHistoryLost.Add(1);
        }
    }

    public void RecordZeros()
    {
        _prunes.Add(0);
        _quotaHistoryLost.Add(0);
    }

    public void Dispose() => Meter.Dispose();

    private IEnumerable<Measurement<int>> ObserveHealthy() =>
        Health?.Invoke() is { } health ? [new Measurement<int>(health.LastFailure is null && !health.Broken ? 1 : 0)] : [];

    private IEnumerable<Measurement<long>> ObserveCommits() =>
        Health?.Invoke() is { } health ? [new Measurement<long>(health.Commits)] : [];
}
