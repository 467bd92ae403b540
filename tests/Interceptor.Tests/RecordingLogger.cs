using Microsoft.Extensions.Logging;

namespace Interceptor.Tests;

/// <summary>One line an <see cref="RecordingLogger"/> took: its level, its formatted text and its structured fields.</summary>
public sealed record LoggedLine(LogLevel Level, string Text, IReadOnlyDictionary<string, object?> State);

/// <summary>A logger for unit tests that keeps every line (thread-safe: the classes under test log from timers and loops).</summary>
public sealed class RecordingLogger : ILogger
{
    private readonly Lock _lock = new();
    private readonly List<LoggedLine> _lines = [];

    /// <summary>Every line so far, with its level and fields.</summary>
    public IReadOnlyList<LoggedLine> Entries
    {
        get
        {
            lock (_lock)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>The text of every line so far.</summary>
    public IReadOnlyList<string> Lines => [.. Entries.Select(l => l.Text)];

    /// <summary>The text of the lines at Error or above.</summary>
    public IReadOnlyList<string> Errors => [.. Entries.Where(l => l.Level >= LogLevel.Error).Select(l => l.Text)];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.Where(p => p.Key != "{OriginalFormat}").ToDictionary(p => p.Key, p => p.Value)
            : [];
        lock (_lock)
        {
            _lines.Add(new LoggedLine(logLevel, formatter(state, exception), values));
        }
    }
}
