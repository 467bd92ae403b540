using System.Diagnostics.Metrics;

namespace Interceptor.Tests;

/// <summary>One measurement a <see cref="MeterRecorder"/> heard: the instrument, the value and its tags as "key=value".</summary>
public sealed record RecordedMeasurement(Instrument Instrument, double Value, IReadOnlyList<string> Tags)
{
    public string Series => Tags.Count == 0 ? Instrument.Name : $"{Instrument.Name}{{{string.Join(",", Tags)}}}";
}

/// <summary>
/// Listens to the instruments of one <see cref="Meter"/> instance only (other tests' meters of the same name are not
/// heard), as dotnet-counters or an exporter would, and keeps every measurement.
/// </summary>
public sealed class MeterRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Lock _lock = new();
    private readonly List<RecordedMeasurement> _measurements = [];

    public MeterRecorder(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, t, _) => Keep(i, v, t));
        _listener.SetMeasurementEventCallback<int>((i, v, t, _) => Keep(i, v, t));
        _listener.SetMeasurementEventCallback<double>((i, v, t, _) => Keep(i, v, t));
        _listener.Start();
    }

    public IReadOnlyList<RecordedMeasurement> Measurements
    {
        get
        {
            lock (_lock)
            {
                return [.. _measurements];
            }
        }
    }

    /// <summary>The sum of the measurements per series (a counter's total; observable instruments: call Observe first).</summary>
    public IReadOnlyDictionary<string, double> Totals() =>
        Measurements.GroupBy(m => m.Series).ToDictionary(g => g.Key, g => g.Sum(m => m.Value), StringComparer.Ordinal);

    /// <summary>Asks every observable instrument for its value now; returns what they answered, per series.</summary>
    public IReadOnlyDictionary<string, double> Observe()
    {
        Clear();
        _listener.RecordObservableInstruments();
        return Totals();
    }

    public void Clear()
    {
        lock (_lock)
        {
            _measurements.Clear();
        }
    }

    public void Dispose() => _listener.Dispose();

    private void Keep<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        where T : struct, IConvertible
    {
        var labels = new List<string>(tags.Length);
        foreach (var tag in tags)
        {
            labels.Add($"{tag.Key}={tag.Value}");
        }

        lock (_lock)
        {
            _measurements.Add(new RecordedMeasurement(instrument, value.ToDouble(System.Globalization.CultureInfo.InvariantCulture), labels));
        }
    }
}
