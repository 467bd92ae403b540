using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Maintenance;

/// <summary>Log lines of the table watchdog and of the store's retention (event ids 600-699).</summary>
internal static partial class MaintenanceLog
{
    [LoggerMessage(600, LogLevel.Error, "cannot check table inet {Table}; trying again in {Seconds:0} s")]
    public static partial void TableCheckFailed(this ILogger logger, Exception exception, string table, double seconds);

    [LoggerMessage(601, LogLevel.Warning, "table inet {Table} was changed behind our back ({Differences}); restoring it")]
    public static partial void TableChanged(this ILogger logger, string table, string differences);

    [LoggerMessage(602, LogLevel.Warning, "table inet {Table} restored")]
    public static partial void TableRestored(this ILogger logger, string table);

    [LoggerMessage(603, LogLevel.Error, "cannot check or restore table inet {Table}: {Reason}")]
    public static partial void TableNotRestored(this ILogger logger, string table, string reason);

    [LoggerMessage(604, LogLevel.Warning, "cannot read the nftables ruleset's generation ({Reason}); this check lists the tables with nft")]
    public static partial void GenerationUnreadable(this ILogger logger, string reason);

    [LoggerMessage(605, LogLevel.Warning, "not told of nftables changes ({Reason}): a deleted table inet {Table} is restored at the next check, within {Seconds:0} s; trying again then")]
    public static partial void ChangesNotHeard(this ILogger logger, string reason, string table, double seconds);

    [LoggerMessage(606, LogLevel.Information, "hearing nftables changes now: a deleted table inet {Table} is restored at once")]
    public static partial void ChangesHeard(this ILogger logger, string table);

    [LoggerMessage(610, LogLevel.Error, "{What} failed: {Reason}")]
    public static partial void StoreUpkeepFailed(this ILogger logger, string what, string reason);

    /// <summary>Error when quota history was lost or the store is still over the cap, else Warning.</summary>
    [LoggerMessage(EventId = 611, Message = "state store over State.MaxBytes: {Reason}")]
    public static partial void StoreOverMaxBytes(this ILogger logger, LogLevel level, string reason);

    [LoggerMessage(612, LogLevel.Error, "what follows a change of table inet {Table} (the metrics port's sweep) failed; the table itself is in place")]
    public static partial void AfterTableChangeFailed(this ILogger logger, Exception exception, string table);
}
