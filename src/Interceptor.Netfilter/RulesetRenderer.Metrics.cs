using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Interceptor.Netfilter;

/// <summary>
/// The metrics endpoint's rules (see RulesetSpec.Metrics.cs): what leaves the endpoint's port towards a local socket (on any
/// local address, either family) is let out when it is the daemon's, dropped when it is a SYN-ACK or another user's; the
/// scrapers' SYNs to the endpoint pass, everyone else's are reset.
/// </summary>
/// <remarks>
/// They come before the filter chain's pass for open connections. The two for SYNs match them in every conntrack state: a
/// SYN that conntrack files under a connection it has (a port reused from a scraper's ended connection) is "established",
/// and the pass would let it out (the guard table's remarks say how to get one); a squatter's answers are an open
/// connection's packets too. A user match does not see a packet without a socket (a syncookie SYN-ACK, which the kernel
/// sends when her listener's queue is full, as <c>listen(fd, 0)</c> makes it at once; what an orphaned socket sends after
/// <c>close()</c>), so the daemon's own packets are accepted first and every other SYN-ACK is dropped, socketless or not:
/// no connection to her completes, so she has nothing to send from an orphan. The daemon's socketless packets that are no
/// SYN-ACK (a TIME_WAIT acknowledgement, the kernel's resets) still pass; its syncookie SYN-ACKs do not (the scraper's
/// SYN is sent again). A connection made to her while the table had none of them is open already; the daemon has the kernel
/// abort it after each install and each change notice (the daemon's MetricsPortSweep). They cost every other packet of the host two address and three port comparisons, and only when the endpoint is on.
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
        var port = metrics.Port.ToString(CultureInfo.InvariantCulture);
        // Every local address, both families: a scraper aimed at "localhost" tries ::1 first, where a customer can listen
        // on the endpoint's port while the daemon holds 127.0.0.1's. Local traffic leaves through lo, whatever the address.
        var answer = $"tcp sport {port} oifname \"lo\"";
        Line(text, 2, $"{answer} meta skuid {Number(spec.MetricsServerUid)} counter accept "
            + Comment("smtp-interceptor's own answers from the metrics endpoint's port, on any local address"));
        Line(text, 2, $"{answer} tcp flags & syn == syn counter drop "
            + Comment("Any other local SYN-ACK from the metrics endpoint's port, a socketless syncookie one too: no connection to it completes"));
        Line(text, 2, $"{answer} meta skuid != {Number(spec.MetricsServerUid)} counter drop "
            + Comment("Another user's socket answering from the metrics endpoint's port (taken while smtp-interceptor was down, or on ::1)"));
        var match = $"{family} daddr {metrics.Address} tcp dport {port} tcp flags syn / syn,ack";
        Line(text, 2, $"{match} meta skuid @{RulesetSpec.MetricsUsersSetName} counter accept "
            + Comment($"The scrapers (set {RulesetSpec.MetricsUsersSetName}) connect to the metrics endpoint"));
        Line(text, 2, $"{match} counter reject with tcp reset "
            + Comment("Anyone else's connection to the metrics endpoint: refused by the kernel, never reaches smtp-interceptor"));
    }
}
