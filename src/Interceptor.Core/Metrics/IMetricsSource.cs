using System.Diagnostics.Metrics;

namespace Interceptor.Core.Metrics;

/// <summary>
/// A layer's figures as <see cref="System.Diagnostics.Metrics"/> instruments: one <see cref="Meter"/> per layer (named
/// <c>Interceptor.*</c>, visible to dotnet-counters and to the daemon's Prometheus endpoint).
/// </summary>
public interface IMetricsSource
{
    Meter Meter { get; }

    /// <summary>
    /// Adds 0 to every labelled counter the alert rules and the dashboard use. Called once an exporter listens: a series
    /// that appears only with its first event makes rate() miss that event and leaves absent-series alerts guessing,
    /// and a measurement taken before anyone listens is not kept anywhere.
    /// </summary>
    void RecordZeros();
}
