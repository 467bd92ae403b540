using Interceptor.Core.Net;
using Interceptor.Core.Options;
using Interceptor.Smtp.Data;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Scan;

/// <summary>The message pipeline the daemon's sessions share, from the configuration: the trace header, and the scan stage
/// with its spool when <c>Scan.Engine</c> is set (with None, today's streaming pipeline, unchanged).</summary>
public static class ScanPipeline
{
    /// <summary>Under <c>State.Directory</c>: the temporary files of messages being scanned (0700, files unlinked at once).</summary>
    public const string SpoolDirectoryName = "spool";

    /// <param name="holds">Where held messages go (the hold store, issue 16); without one the hold band gets 451 4.7.0.</param>
    public static MessagePipeline For(InterceptorOptions options, ILogger logger, IMessageHolding? holds = null)
    {
        var trace = new TraceHeaderStage(options.Relay.HeloName, options.Trace.IncludeProcess);
        var scan = options.Scan;
        if (scan.Engine == ScanEngine.None)
        {
            return new MessagePipeline([trace], null, holds);
        }

        var endpoint = ScanEndpoint.Parse(scan.Engine, scan.Endpoint, out var problem)
            ?? throw new ArgumentException($"Scan.Endpoint: {problem}", nameof(options));
        IContentScanner scanner = scan.Engine == ScanEngine.Rspamd ? new RspamdClient(endpoint) : new SpamdClient(endpoint);
        var stage = new ScanStage(scanner, scan, options.Relay.HeloName, canHold: holds is not null, logger);
        var spools = new FileMessageSpoolFactory(Path.Combine(options.State.Directory, SpoolDirectoryName), LargestMessage(options.Limits));
        return new MessagePipeline([trace, stage], spools, holds);
    }

    /// <summary>The largest message any user may send: no spool grows past it.</summary>
    internal static long LargestMessage(LimitsOptions limits) =>
        limits.Users.Keys.Select(limits.For).Append(limits.For(null)).Max(l => l.MessageSizeBytes ?? QuotaLimits.Defaults.MessageSizeBytes!.Value);
}
