using Interceptor.Core.Options;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Scan;

/// <summary>Content scanning's log lines: every verdict names the transaction, the user, the score and the top rules.</summary>
internal static partial class ScanLog
{
    [LoggerMessage(EventId = 1650, Level = LogLevel.Warning, Message = "scan refused message {TransactionId} of uid={Uid} user={User} as spam: score {Score} (limit {Limit}), symbols {Symbols} ({Scanner})")]
    public static partial void Refused(ILogger logger, string transactionId, uint uid, string user, double score, double limit, string symbols, string scanner);

    [LoggerMessage(EventId = 1651, Level = LogLevel.Warning, Message = "scan put message {TransactionId} of uid={Uid} user={User} in the hold band: score {Score} (hold {HoldScore}), symbols {Symbols} ({Scanner})")]
    public static partial void InHoldBand(ILogger logger, string transactionId, uint uid, string user, double score, double holdScore, string symbols, string scanner);

    [LoggerMessage(EventId = 1652, Level = LogLevel.Debug, Message = "scan passed message {TransactionId} of uid={Uid} user={User}: score {Score}, symbols {Symbols} ({Scanner})")]
    public static partial void Passed(ILogger logger, string transactionId, uint uid, string user, double score, string symbols, string scanner);

    [LoggerMessage(EventId = 1653, Level = LogLevel.Information, Message = "message {TransactionId} of uid={Uid} user={User} not scanned: {Size} bytes is over Scan.MaxBytes ({MaxBytes})")]
    public static partial void NotScannedTooBig(ILogger logger, string transactionId, uint uid, string user, long size, long maxBytes);

    [LoggerMessage(EventId = 1654, Level = LogLevel.Warning, Message = "scan of message {TransactionId} of uid={Uid} user={User} failed ({Scanner}): {Reason}; Scan.OnError={Action}")]
    public static partial void Failed(ILogger logger, string transactionId, uint uid, string user, string scanner, string reason, ScanErrorAction action);
}
