using Microsoft.Extensions.Logging;

namespace Interceptor.Core.Policy;

/// <summary>
/// The policy's log lines (event ids 400-499). Most run inside a session, whose logging scope carries uid, user and session
/// id as well; the templates keep their own uid= and user= because admins grep the messages for them.
/// </summary>
internal static partial class PolicyLog
{
    [LoggerMessage(400, LogLevel.Error, "refusing mail of uid={Uid} user={User}: the accounting store cannot be written: {Reason}")]
    public static partial void RefusingMailStoreUnwritable(this ILogger logger, uint uid, string user, string reason);

    [LoggerMessage(401, LogLevel.Error, "could not record transaction {Id} of uid={Uid} user={User}: {Reason}")]
    public static partial void TransactionNotRecorded(this ILogger logger, string id, uint uid, string user, string? reason);

    [LoggerMessage(402, LogLevel.Information, "policy refused uid={Uid} user={User}: {Kind} {Count}/{Limit}")]
    public static partial void PolicyRefused(this ILogger logger, uint uid, string user, RefusalKind kind, int count, int limit);

    [LoggerMessage(403, LogLevel.Error, "could not record a refusal of uid={Uid} user={User}: {Reason}")]
    public static partial void RefusalNotRecorded(this ILogger logger, uint uid, string user, string reason);

    [LoggerMessage(404, LogLevel.Warning, "suspended uid={Uid} user={User} automatically: {Reason}")]
    public static partial void SuspendedAutomatically(this ILogger logger, uint uid, string user, string reason);

    [LoggerMessage(405, LogLevel.Error, "suspension of uid={Uid} user={User} is only in memory: {Reason}")]
    public static partial void SuspensionOnlyInMemory(this ILogger logger, uint uid, string user, string reason);

    [LoggerMessage(406, LogLevel.Warning, "messages of uid={Uid} user={User} keep failing on our side ({Count} within {Minutes} min, the last {Id}): this user's new messages are refused at MAIL (451 4.3.0) for {Seconds} s, then let through one at a time until one gets through our stages (Suspension.LocalFailureLimit; never a suspension)")]
    public static partial void FailingHereRefusedAtMail(this ILogger logger, uint uid, string user, int count, double minutes, double seconds, string id);

    [LoggerMessage(407, LogLevel.Information, "message {Id} of uid={Uid} user={User} got through our stages after failures of ours: this user's messages are admitted again")]
    public static partial void FailingHereOver(this ILogger logger, uint uid, string user, string id);
}
