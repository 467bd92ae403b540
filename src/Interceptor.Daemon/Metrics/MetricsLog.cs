using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>The metrics endpoint's log lines (event ids 850-899).</summary>
internal static partial class MetricsLog
{
    [LoggerMessage(850, LogLevel.Warning, "metrics: connection cap reached ({Max} requests at once); {Count} connections closed unanswered over {Seconds:0} s; at most one such line per {Interval:0} s")]
    public static partial void ConnectionCapReached(this ILogger logger, int max, long count, double seconds, double interval);
}
