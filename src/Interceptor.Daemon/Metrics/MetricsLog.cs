using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>The metrics endpoint's log lines (event ids 850-899).</summary>
internal static partial class MetricsLog
{
    [LoggerMessage(850, LogLevel.Warning, "metrics: connection cap reached ({Max} requests at once{Kept}); {Count} connections closed unanswered over {Seconds:0} s; at most one such line per {Interval:0} s")]
    public static partial void ConnectionCapReached(this ILogger logger, int max, string kept, long count, double seconds, double interval);

    [LoggerMessage(851, LogLevel.Warning, "metrics: {Owner} holds {Max} connections already, a user's share; {Count} more of its connections closed unanswered over {Seconds:0} s (the last named); at most one such line per {Interval:0} s")]
    public static partial void OwnerConnectionCapReached(this ILogger logger, string owner, int max, long count, double seconds, double interval);
}
