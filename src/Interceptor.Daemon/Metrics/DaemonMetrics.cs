using Interceptor.Core.Metrics;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Attribution;
using Interceptor.Daemon.Intercept;
using Interceptor.Daemon.Pool;
using Interceptor.Smtp.Metrics;
using Interceptor.Store;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Each layer's meter, made once for the daemon: the wiring hands each part its own, and <see cref="MetricsEndpoint"/>
/// exports <see cref="Sources"/>. The meters exist whether or not Metrics.Listen is set (dotnet-counters can read them).
/// </summary>
public sealed class DaemonMetrics(bool perUser) : IDisposable
{
    public PolicyMetrics Policy { get; } = new(perUser);

    public RelayMetrics Relay { get; } = new(perUser);

    public AttributionMetrics Attribution { get; } = new();

    public InterceptMetrics Intercept { get; } = new();

    public StoreMetrics Store { get; } = new();

    public PoolMetrics Pool { get; } = new();

    /// <summary>Every meter, for the exporter; their names are documented in the README (Monitoring).</summary>
    public IReadOnlyList<IMetricsSource> Sources => [Policy, Relay, Attribution, Intercept, Store, Pool];

    public void Dispose()
    {
        Policy.Dispose();
        Relay.Dispose();
        Attribution.Dispose();
        Intercept.Dispose();
        Store.Dispose();
        Pool.Dispose();
    }
}
