using System.Net;

namespace Interceptor.Netfilter;

/// <summary>
/// The metrics endpoint's part of the table. The endpoint listens on loopback, where every local user can connect; its
/// own caps (connections per user, some kept for the scraper) act only once a connection is accepted, so a customer's
/// connect-and-close flood still filled the kernel's queue of the listener and the endpoint's admission queue before any
/// owner was looked up, and the scraper's connection was dropped. The kernel refuses the connection instead, before
/// it is made, to everyone but <see cref="MetricsUids"/>: their SYNs pass, anyone else's get a TCP reset. And a customer
/// who binds the endpoint's port while the daemon is down (an unprivileged port is anyone's to take) cannot answer the
/// scrapers with figures of her own: of what leaves that port towards a local socket, only what the sockets of
/// <see cref="MetricsServerUid"/> send passes; every other SYN-ACK (socketless syncookie ones too) and every other user's
/// packet is dropped, on any local address, so no connection to her completes and the scrape fails.
/// </summary>
public sealed partial record RulesetSpec
{
    /// <summary>The named set of the uids that may connect to the metrics endpoint (root and Metrics.ScraperUsers).</summary>
    public const string MetricsUsersSetName = "metrics_users";

    /// <summary>
    /// Metrics.Listen, a loopback address and port; null: no endpoint, and nothing in the table about it. An IPv4 address
    /// written as IPv6 (::ffff:127.0.0.1) is kept as IPv4, which is what a packet to it carries.
    /// </summary>
    public IPEndPoint? MetricsEndpoint { get; init => field = NormalizeMetricsEndpoint(value); }

    /// <summary>The uids whose connections to <see cref="MetricsEndpoint"/> the kernel lets through; sorted and distinct.</summary>
    public IReadOnlyList<uint> MetricsUids { get; init => field = NormalizeUids(value); } = [];

    /// <summary>
    /// The daemon's uid: only its sockets may send from <see cref="MetricsEndpoint"/>'s port to local sockets. 0 by default
    /// (a daemon run as root); the daemon sets its own effective uid.
    /// </summary>
    public uint MetricsServerUid { get; init; }

    private static IPEndPoint? NormalizeMetricsEndpoint(IPEndPoint? endpoint)
    {
        if (endpoint is null)
        {
            return null;
        }

        CheckPort(endpoint.Port, "Metrics.Listen");
        var address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
        return IPAddress.IsLoopback(address)
            ? new IPEndPoint(address, endpoint.Port)
            : throw new ArgumentException($"Metrics.Listen {endpoint} is not a loopback address.", nameof(endpoint));
    }

    /// <summary>
    /// A metrics port that is also intercepted, blocked or the listener's would have its connections redirected or
    /// refused by those rules, the scraper's too.
    /// </summary>
    private void EnsureMetricsPortFree()
    {
        if (MetricsEndpoint is not { Port: var port })
        {
            return;
        }

        var clash = Ports.Contains(port) ? "Interception.Ports" : BlockedPorts.Contains(port) ? "Interception.BlockedPorts" : port == ListenPort ? "Listen.Port" : null;
        if (clash is not null)
        {
            throw new ArgumentException($"Metrics.Listen port {port} is also in {clash}; the metrics endpoint needs a port of its own.", nameof(MetricsEndpoint));
        }
    }
}
