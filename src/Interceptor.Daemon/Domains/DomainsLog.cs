using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Domains;

/// <summary>Log lines of the domain map and the DKIM key directory (event ids 1700-1719).</summary>
internal static partial class DomainsLog
{
    [LoggerMessage(1700, LogLevel.Warning, "domain map {Path} line {Line} skipped: {Problem}")]
    public static partial void MalformedLine(ILogger logger, string path, int line, string problem);

    [LoggerMessage(1701, LogLevel.Information, "domain map {Path} loaded: {Domains} domains of {Users} users, {Skipped} lines skipped")]
    public static partial void Loaded(ILogger logger, string path, int domains, int users, int skipped);

    [LoggerMessage(1702, LogLevel.Error, "domain map {Path} cannot be read ({Reason}); keeping the last map ({Domains} domains)")]
    public static partial void Unreadable(ILogger logger, string path, string reason, int domains);
}
