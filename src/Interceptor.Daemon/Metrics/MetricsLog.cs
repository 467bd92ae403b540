using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>The metrics endpoint's log lines (event ids 850-899).</summary>
internal static partial class MetricsLog
{
    [LoggerMessage(850, LogLevel.Warning, "metrics: connection cap reached ({Max} requests at once{Kept}); {Count} connections closed unanswered over {Seconds:0} s; at most one such line per {Interval:0} s")]
    public static partial void ConnectionCapReached(this ILogger logger, int max, string kept, long count, double seconds, double interval);

    [LoggerMessage(851, LogLevel.Warning, "metrics: {Owner} holds {Max} connections already, a user's share; {Count} more of its connections closed unanswered over {Seconds:0} s (the last named); at most one such line per {Interval:0} s")]
    public static partial void OwnerConnectionCapReached(this ILogger logger, string owner, int max, long count, double seconds, double interval);

    [LoggerMessage(852, LogLevel.Error, "metrics: cannot listen on {Endpoint}: the port is held by {Holders}; mail is relayed as usual, the endpoint tries again every {Interval:0} s (at most one such line a minute; attempts since the last: {Attempts}). Scrapes fail meanwhile (the kernel drops what another user's socket sends from the port): give Metrics.Listen a port below 1024, which customers cannot bind")]
    public static partial void PortHeld(this ILogger logger, System.Net.IPEndPoint endpoint, string holders, long attempts, double interval);

    [LoggerMessage(853, LogLevel.Warning, "metrics: listening on {Endpoint} at last, after {Seconds:0} s with the port held by another socket")]
    public static partial void ListeningAtLast(this ILogger logger, System.Net.IPEndPoint endpoint, double seconds);

    [LoggerMessage(854, LogLevel.Critical, "metrics: cannot listen on {Endpoint} (Metrics.Listen): {Reason}; {Then}")]
    public static partial void CannotListen(this ILogger logger, System.Net.IPEndPoint endpoint, string reason, string then);

    [LoggerMessage(855, LogLevel.Warning, "{Warning}")]
    public static partial void ConfigurationWarning(this ILogger logger, string warning);

    [LoggerMessage(856, LogLevel.Warning, "metrics: {Count} requests without the token of Metrics.BearerTokenFile answered 401 over {Seconds:0} s, the last from {Owner}; at most one such line per {Interval:0} s")]
    public static partial void TokenMissing(this ILogger logger, string owner, long count, double seconds, double interval);

    [LoggerMessage(857, LogLevel.Warning, "metrics: closed {What} on the metrics endpoint's port {Port}, towards local clients: made while the table had no metrics rules, they could carry a scraper's requests, its token with them, to another user and an answer back; the scrapers' next connections reach smtp-interceptor")]
    public static partial void SweepClosed(this ILogger logger, int port, string what);

    [LoggerMessage(858, LogLevel.Error, "metrics: sockets another user may hold on the metrics endpoint's port {Port} towards local clients are not all closed: {Reason}. Restart the scrapers (Prometheus), so that their connections are made anew and reach smtp-interceptor")]
    public static partial void SweepFailed(this ILogger logger, int port, string reason);
}
