using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hosting;

/// <summary>Log lines of the accept loops and of the systemd notifications (event ids 100-199).</summary>
internal static partial class HostingLog
{
    [LoggerMessage(100, LogLevel.Error, "{Listener}: accept failed {Count} times in {Seconds:0} s, last: {Reason}; backing off up to {MaxMs} ms and accepting again (the kernel keeps waiting clients in the backlog)")]
    public static partial void AcceptFailing(this ILogger logger, string listener, long count, double seconds, string reason, double maxMs);

    [LoggerMessage(101, LogLevel.Error, "{Listener}: could not register an accepted connection; it is closed")]
    public static partial void RegistrationFailed(this ILogger logger, Exception exception, string listener);

    [LoggerMessage(102, LogLevel.Error, "{Listener}: connection {Id} failed")]
    public static partial void ConnectionFailed(this ILogger logger, Exception exception, string listener, long id);

    [LoggerMessage(110, LogLevel.Warning, "NOTIFY_SOCKET={NotifySocket} is not a Unix socket path; not notifying systemd")]
    public static partial void NotifySocketInvalid(this ILogger logger, string notifySocket);

    [LoggerMessage(111, LogLevel.Error, "health check failed: not feeding the systemd watchdog, so systemd restarts the daemon within {Timeout}")]
    public static partial void HealthCheckFailed(this ILogger logger, TimeSpan? timeout);

    [LoggerMessage(112, LogLevel.Warning, "cannot notify systemd ({Message}): {Reason}")]
    public static partial void NotifyFailed(this ILogger logger, string message, string reason);
}
