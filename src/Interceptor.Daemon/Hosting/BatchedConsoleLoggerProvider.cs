using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// The daemon's console logging: lines formatted by a <see cref="ConsoleFormatter"/> (the framework's JSON one, or
/// <see cref="JournalPriorityFormatter"/> under systemd) on the logging thread, as the console logger formats them, and
/// written in batches by a <see cref="ConsoleLineWriter"/> instead of one thread wake-up per line.
/// </summary>
public sealed class BatchedConsoleLoggerProvider(ConsoleFormatter formatter, ConsoleLineWriter writer) : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentDictionary<string, Logger> _loggers = new(StringComparer.Ordinal);
    private readonly ConsoleFormatter _formatter = formatter;
    private readonly ConsoleLineWriter _writer = writer;
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public ILogger CreateLogger(string categoryName) => _loggers.GetOrAdd(categoryName, name => new Logger(name, this));

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    /// <summary>Writes what is still waiting; lines logged later are written by their callers.</summary>
    public void Dispose() => _writer.Dispose();

    private sealed class Logger(string category, BatchedConsoleLoggerProvider provider) : ILogger
    {
        // Per thread, as the console logger does: a line is formatted without a lock and copied once into the batch.
        [ThreadStatic]
        private static StringWriter? t_line;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => provider._scopes.Push(state);

        // The factory's filters (the minimum level) decide; this provider has no level of its own.
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var line = t_line ??= new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
            var text = line.GetStringBuilder();
            try
            {
                provider._formatter.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter), provider._scopes, line);
                if (text.Length > 0)
                {
                    provider._writer.Append(text);
                }
            }
            finally
            {
                text.Clear();
                if (text.Capacity > 64 * 1024)
                {
                    // One huge line (an exception's stack) must not keep its buffer on this thread for good.
                    t_line = null;
                }
            }
        }
    }
}

public static class BatchedConsoleLoggingExtensions
{
    /// <summary>
    /// Adds the provider so that the factory's disposal disposes it (writing what waits): a provider added as an
    /// instance (<see cref="LoggingBuilderExtensions.AddProvider"/>) is never disposed by the container.
    /// </summary>
    public static ILoggingBuilder AddBatchedConsole(this ILoggingBuilder builder, ConsoleFormatter formatter, Func<TextWriter>? output = null)
    {
        builder.Services.AddSingleton<ILoggerProvider>(_ => new BatchedConsoleLoggerProvider(formatter, new ConsoleLineWriter(output)));
        return builder;
    }
}
