using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Identity;

/// <summary>Log lines of the From policy and DKIM signing stages (event ids 1720-1739); the session scope names the user.</summary>
internal static partial class IdentityLog
{
    [LoggerMessage(1720, LogLevel.Warning, "from-policy={Mode} reason={Reason} domain={Domain} transaction={TransactionId} uid={Uid} user={User}: {Detail}")]
    public static partial void FromNotOwned(ILogger logger, string mode, string reason, string domain, string transactionId, uint uid, string user, string detail);

    [LoggerMessage(1721, LogLevel.Information, "dkim=pass d={Domain} s={Selector} a={Algorithm} transaction={TransactionId} uid={Uid} user={User}: signed")]
    public static partial void Signed(ILogger logger, string domain, string selector, string algorithm, string transactionId, uint uid, string user);

    [LoggerMessage(1722, LogLevel.Information, "dkim=none reason={Reason} domain={Domain} transaction={TransactionId} uid={Uid} user={User}: relayed unsigned")]
    public static partial void Unsigned(ILogger logger, string reason, string domain, string transactionId, uint uid, string user);

    [LoggerMessage(1723, LogLevel.Error, "dkim key for {Domain} unusable, relaying unsigned: {Problem}")]
    public static partial void KeyUnusable(ILogger logger, string domain, string problem);
}
