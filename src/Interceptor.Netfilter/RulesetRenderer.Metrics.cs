using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Interceptor.Netfilter;

/// <summary>
/// The metrics endpoint's two rules (see RulesetSpec.Metrics.cs): the scrapers' SYNs pass, everyone else's are reset.
/// </summary>
/// <remarks>
/// They come before the filter chain's pass for open connections and match SYNs in every conntrack state: a SYN that
/// conntrack files under a connection it has (a port reused from a scraper's ended connection) is "established", and the
/// pass would let it out (the guard table's remarks say how to get one). They cost every other packet of the host one
/// address comparison, and only when the endpoint is on.
/// </remarks>
public static partial class RulesetRenderer
{
    private static void RenderMetricsSet(StringBuilder text, RulesetSpec spec)
    {
        if (spec.MetricsEndpoint is not null)
        {
            Set(text, RulesetSpec.MetricsUsersSetName, "uid",
                "Root and Metrics.ScraperUsers: the only users whose connections reach the metrics endpoint",
                spec.MetricsUids.Select(Number));
        }
    }

    private static void RenderMetricsRules(StringBuilder text, RulesetSpec spec)
    {
        if (spec.MetricsEndpoint is not { } metrics)
        {
            return;
        }

        var family = metrics.AddressFamily == AddressFamily.InterNetworkV6 ? "ip6" : "ip";
        var match = $"{family} daddr {metrics.Address} tcp dport {metrics.Port.ToString(CultureInfo.InvariantCulture)} tcp flags syn / syn,ack";
        Line(text, 2, $"{match} meta skuid @{RulesetSpec.MetricsUsersSetName} counter accept "
            + Comment($"The scrapers (set {RulesetSpec.MetricsUsersSetName}) connect to the metrics endpoint"));
        Line(text, 2, $"{match} counter reject with tcp reset "
            + Comment("Anyone else's connection to the metrics endpoint: refused by the kernel, never reaches smtp-interceptor"));
    }
}
