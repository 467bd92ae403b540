using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// The Generic Host `run` builds: the hosted services in the order given (started in that order, one after the other;
/// stopped in the reverse order), SIGTERM and SIGINT through the host's console lifetime (both stop the daemon cleanly,
/// exit 0), and the daemon's own loggers. Nothing else of the host's defaults: no configuration sources (the daemon has
/// its own loader), no logging providers of its own, no "Application started" lines.
/// </summary>
public static class DaemonHost
{
    /// <param name="loggers">The daemon's loggers; the host's own lines go there too (see <see cref="HostLogFilter"/>).</param>
    /// <param name="first">The first hosted service (so the last to stop), made with the host's lifetime: <see cref="SystemdService"/>.</param>
    /// <param name="services">The other hosted services, in start order. `run` owns and disposes them, not the host.</param>
    public static IHost Build(ILoggerFactory loggers, Func<IHostApplicationLifetime, IHostedService> first, params IHostedService[] services)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(services);
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Services.AddSingleton<ILoggerFactory>(new HostLogFilter(loggers));
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.AddSingleton(provider => first(provider.GetRequiredService<IHostApplicationLifetime>()));
        foreach (var service in services)
        {
            // Registered as instances, which the container does not dispose: `run` owns them.
            builder.Services.AddSingleton(service);
        }

        return builder.Build();
    }
}

/// <summary>
/// The daemon's loggers for the host, less one line: "Hosting failed to start" with the exception of a service that could
/// not start. That service has logged why in the daemon's words already (or `run` reports the exception itself), so the
/// admin sees one reason, not two. Everything else the host says (a background service that failed) passes.
/// </summary>
public sealed class HostLogFilter(ILoggerFactory loggers) : ILoggerFactory
{
    private const string StartupFaulted = "HostedServiceStartupFaulted";

    public ILogger CreateLogger(string categoryName) =>
        categoryName.StartsWith("Microsoft.Extensions.Hosting", StringComparison.Ordinal)
            ? new Filtered(loggers.CreateLogger(categoryName))
            : loggers.CreateLogger(categoryName);

    public void AddProvider(ILoggerProvider provider) => loggers.AddProvider(provider);

    /// <summary>The factory belongs to Program, which disposes it.</summary>
    public void Dispose()
    {
    }

    private sealed class Filtered(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Name != StartupFaulted)
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
