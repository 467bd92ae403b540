using System.Diagnostics.Metrics;
using Interceptor.Core.Metrics;

namespace Interceptor.Daemon.Attribution;

/// <summary>
/// Attribution's figures (meter <c>Interceptor.Attribution</c>): connections refused before any SMTP (not redirected,
/// local destination, owner unknown, unknown uid; every one, unlike the aggregated log), owner lookups made without
/// conntrack's word on the client's port, the owner lookup's latency and the client sockets live sessions hold.
/// </summary>
public sealed class AttributionMetrics : IMetricsSource, IDisposable
{
    public const string MeterName = "Interceptor.Attribution";

    /// <summary>
    /// The reasons smtpi_connections_refused_total counts (ConnectionAttributor, UidAttribution; the kernel's guard refusals
    /// that <see cref="StrayPacketLog"/> hears, one per packet).
    /// </summary>
    public static readonly string[] ConnectionRefusalReasons = ["not_redirected", "local_destination", "owner_unknown", "client_gone", "unknown_uid", StrayPacketLog.StraySyn, StrayPacketLog.StrayPacket];

    // Owner lookups take microseconds; buckets from 5 µs to 10 ms.
    private static readonly double[] LookupBuckets = [0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0005, 0.001, 0.01];
    private readonly Counter<long> _refused;
    private readonly Counter<long> _unverified;
    private readonly Histogram<double> _lookups;

    public AttributionMetrics()
    {
        _refused = Meter.CreateCounter<long>("smtpi_connections_refused_total", description: "Connections refused before any SMTP, by reason");
        _unverified = Meter.CreateCounter<long>("smtpi_client_ports_unverified_total",
            description: "Owner lookups of redirected connections made by the client port their socket shows, because conntrack could not be asked (no nf_conntrack_netlink, no CAP_NET_ADMIN): a port NAT moved is then charged to whoever holds it");
        _lookups = Meter.CreateHistogram("smtpi_owner_lookup_seconds", unit: "s", description: "Time to find the Unix user owning a redirected connection",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LookupBuckets });
        Meter.CreateObservableGauge("smtpi_attributed_client_sockets", () => ClaimedClientSockets?.Invoke() ?? 0,
            description: "Client sockets held by the connections they were attributed to (one per session; ClientSocketClaims)");
    }

    /// <summary>How many client sockets attributed connections hold now (set once the attributor exists).</summary>
    public Func<int>? ClaimedClientSockets { get; set; }

    public Meter Meter { get; } = new(MeterName);

    /// <summary>A connection refused before any SMTP; <paramref name="reason"/> is one of <see cref="ConnectionRefusalReasons"/>.</summary>
    public void ConnectionRefused(string reason) => _refused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>
    /// A connection's owner looked up by the port it shows, conntrack not asked (<see cref="ClientPortAnswer.Unverifiable"/>):
    /// one a check, so a connection the quick path passes on to the slow one counts twice; the alert asks for any.
    /// </summary>
    public void PortUnverified() => _unverified.Add(1);

    public void OwnerLookup(TimeSpan elapsed) => _lookups.Record(elapsed.TotalSeconds);

    public void RecordZeros()
    {
        foreach (var reason in ConnectionRefusalReasons)
        {
            _refused.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        _unverified.Add(0);
    }

    public void Dispose() => Meter.Dispose();
}
