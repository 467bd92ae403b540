using Interceptor.Core.Options;
using Interceptor.Linux;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Configuration;

/// <summary>
/// The checks that belong to the platform rather than to the options (the nft name rules, the Unix socket path limit):
/// each lives with the code that hits the limit and is asked here, so check-config reports it with the key at fault.
/// </summary>
internal static class HostLimits
{
    public static IEnumerable<string> Check(InterceptorOptions options)
    {
        if (NftNames.ConfiguredTableProblem(options.Interception.Table) is { } table)
        {
            yield return $"Interception.Table: {table}";
        }

        if (UnixSocketPath.LengthProblem(options.Control.SocketPath) is { } socket)
        {
            yield return $"Control.SocketPath: {socket}";
        }
    }
}
