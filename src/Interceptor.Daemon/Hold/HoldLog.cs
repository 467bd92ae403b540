using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hold;

/// <summary>Log lines of hold-and-release (event ids 1600-1699).</summary>
internal static partial class HoldLog
{
    [LoggerMessage(1600, LogLevel.Information, "held message {Id} uid={Uid} user={User} released by uid {AdminUid}; delivering to {Destination}")]
    public static partial void Released(this ILogger logger, string id, uint uid, string user, uint adminUid, string destination);

    [LoggerMessage(1601, LogLevel.Information, "held message {Id} uid={Uid} user={User} delivered after release (attempt {Attempt}): {Result}")]
    public static partial void Delivered(this ILogger logger, string id, uint uid, string user, int attempt, string result);

    [LoggerMessage(1602, LogLevel.Warning, "held message {Id} uid={Uid} user={User} deferred (attempt {Attempt}), next try at {Next:O}: {Result}")]
    public static partial void Deferred(this ILogger logger, string id, uint uid, string user, int attempt, DateTimeOffset next, string result);

    [LoggerMessage(1603, LogLevel.Error, "held message {Id} uid={Uid} user={User} failed after {Attempt} attempt(s), kept for the admin: {Result}")]
    public static partial void Failed(this ILogger logger, string id, uint uid, string user, int attempt, string result);

    [LoggerMessage(1604, LogLevel.Information, "held message {Id} uid={Uid} user={User} deleted by uid {AdminUid}")]
    public static partial void Deleted(this ILogger logger, string id, uint uid, string user, uint adminUid);

    [LoggerMessage(1605, LogLevel.Warning, "held message {Id} uid={Uid} user={User} ({State}, held {HeldAt:O}) deleted: older than Hold.RetentionDays ({Days} days)")]
    public static partial void Expired(this ILogger logger, string id, uint uid, string user, HoldState state, DateTimeOffset heldAt, double days);

    [LoggerMessage(1606, LogLevel.Warning, "Hold.Directory: deleted {Count} stray file(s) left by an interrupted hold or delete: {Files}")]
    public static partial void StraysDeleted(this ILogger logger, int count, string files);

    [LoggerMessage(1607, LogLevel.Error, "hold-and-release upkeep failed: {Reason}")]
    public static partial void UpkeepFailed(this ILogger logger, string reason);

    [LoggerMessage(1608, LogLevel.Error, "held message {Id} was delivered but its accounting failed: {Reason}")]
    public static partial void AccountingFailed(this ILogger logger, string id, string reason);

    [LoggerMessage(1609, LogLevel.Critical, "{Reason}; not starting")]
    public static partial void HoldDirectoryUnusable(this ILogger logger, string reason);
}
