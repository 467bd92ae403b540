using Microsoft.Extensions.Logging;

namespace Interceptor.Linux;

/// <summary>The /etc/subuid reader's log lines (event ids 900-999).</summary>
internal static partial class SubordinateUidLog
{
    [LoggerMessage(900, LogLevel.Error, "cannot read {Path}: {Reason}; keeping the {Count} subordinate uid range(s) read before")]
    public static partial void CannotRead(this ILogger logger, string path, string reason, int count);

    [LoggerMessage(901, LogLevel.Warning, "{Path} {Problem}; that line is ignored")]
    public static partial void LineIgnored(this ILogger logger, string path, string problem);

    [LoggerMessage(902, LogLevel.Information, "{Path}: {Count} subordinate uid range(s) of {Owners} user(s) attributed to their owners")]
    public static partial void Loaded(this ILogger logger, string path, int count, int owners);

    [LoggerMessage(903, LogLevel.Warning, "{Path} line {Line}: the subordinate uid range {Range} of {Owner} holds the uids of other accounts: {Accounts}. "
        + "Their connections are charged to the range's owner, who can also become them through newuidmap; move the range to uids no account uses")]
    public static partial void AccountsInsideRange(this ILogger logger, string path, int line, string range, string owner, string accounts);

    [LoggerMessage(904, LogLevel.Warning, "cannot check {Path}'s ranges against the accounts: {Reason}")]
    public static partial void CannotListAccounts(this ILogger logger, string path, string reason);

    [LoggerMessage(905, LogLevel.Information, "{Path}: no range holds another account's uid ({Accounts} account(s) listed by the passwd database, {Ranges} range(s); "
        + "a directory's accounts count only where NSS lists them)")]
    public static partial void NoAccountsInsideRanges(this ILogger logger, string path, int accounts, int ranges);
}
