using Interceptor.Core.Net;
using Interceptor.Core.Options;
using Interceptor.Smtp.Data;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Scan;

/// <summary>The scan stage and the message spool, from the configuration (the daemon puts them in its pipeline).</summary>
public static class ScanPipeline
{
    /// <summary>Under <c>State.Directory</c>: the temporary files of spooled messages (0700, files unlinked at once).</summary>
    public const string SpoolDirectoryName = "spool";

    /// <summary>The scan stage for <c>Scan.*</c>; null with <c>Scan.Engine</c> None.</summary>
    /// <param name="canHold">Whether the pipeline has a hold store; without one the hold band gets 451 4.7.0.</param>
    public static ScanStage? StageFor(InterceptorOptions options, ILogger logger, bool canHold)
    {
        var scan = options.Scan;
        if (scan.Engine == ScanEngine.None)
        {
            return null;
        }

        var endpoint = ScanEndpoint.Parse(scan.Engine, scan.Endpoint, out var problem)
            ?? throw new ArgumentException($"Scan.Endpoint: {problem}", nameof(options));
        IContentScanner scanner = scan.Engine == ScanEngine.Rspamd ? new RspamdClient(endpoint) : new SpamdClient(endpoint);
        return new ScanStage(scanner, scan, options.Relay.HeloName, canHold, logger);
    }

    /// <summary>
    /// The spool of every stage that needs the whole message: memory, then a private file under State.Directory. It keeps
    /// the wire form, which may be up to twice the size the message limit counts (every bare LF becomes CRLF, a line's
    /// leading dot is doubled), so a message within its limit never fills it.
    /// </summary>
    public static FileMessageSpoolFactory SpoolsFor(InterceptorOptions options) =>
        new(Path.Combine(options.State.Directory, SpoolDirectoryName), SpoolBytesFor(LargestMessage(options.Limits)));

    internal static long SpoolBytesFor(long largestMessage) => largestMessage > (long.MaxValue - HeaderSlack) / 2 ? long.MaxValue : (2 * largestMessage) + HeaderSlack;

    // The renamed client trace headers and the like: a message's own header lines grow by a few bytes each.
    private const long HeaderSlack = 64 * 1024;

    /// <summary>The largest message any user may send: no spool grows past it.</summary>
    internal static long LargestMessage(LimitsOptions limits) =>
        limits.Users.Keys.Select(limits.For).Append(limits.For(null)).Max(l => l.MessageSizeBytes ?? QuotaLimits.Defaults.MessageSizeBytes!.Value);
}
