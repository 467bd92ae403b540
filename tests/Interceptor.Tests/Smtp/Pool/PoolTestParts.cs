using System.Net;
using Interceptor.Core.Options;
using Interceptor.Core.Pool;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Tests.Smtp.Pool;

/// <summary>What the relay path told the pool's owner, in order.</summary>
internal sealed class RecordingPoolObserver : IRelayPoolObserver
{
    public List<string> Calls { get; } = [];

    public List<PoolEvent> Events { get; } = [];

    public void Publish(PoolUpdate update)
    {
        Events.AddRange(update.Events);
    }

    public void LoginRefused(string relay, string user, string reply) => Calls.Add($"login-refused {relay} {user}");

    public void Carried(string relay) => Calls.Add($"carried {relay}");

    public void Failed(string relay, string reason) => Calls.Add($"failed {relay}: {reason}");
}

/// <summary>Passes connections to a scripted connector, records where they went, and refuses the endpoints named.</summary>
internal sealed class RoutingConnector(IUpstreamConnector inner, params IPEndPoint[] refused) : IUpstreamConnector
{
    public List<IPEndPoint> Endpoints { get; } = [];

    public Task<IUpstreamTransport> ConnectAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Endpoints.Add(endpoint);
        return refused.Contains(endpoint)
            ? throw new UpstreamUnavailableException($"connect to {endpoint} failed: connection refused")
            : inner.ConnectAsync(endpoint, timeout, cancellationToken);
    }
}

internal static class PoolTestParts
{
    public const string Helo = "relay.test";

    public static readonly IPEndPoint Relay1 = new(IPAddress.Parse("10.0.0.1"), 587);
    public static readonly IPEndPoint Relay2 = new(IPAddress.Parse("10.0.0.2"), 587);

    public static readonly UpstreamSettings Settings = new(Helo, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));

    /// <summary>Two private relays without TLS (scripted dialogues cannot do TLS): relay1 Primary, relay2 Standby with its own EHLO name.</summary>
    public static IReadOnlyList<SmarthostOptions> Relays { get; } =
    [
        new() { Name = "relay1", Host = "10.0.0.1", Role = SmarthostRole.Primary, Tls = SmarthostTls.None, EgressAddress = "198.51.100.1" },
        new() { Name = "relay2", Host = "10.0.0.2", Role = SmarthostRole.Standby, Tls = SmarthostTls.None, EgressAddress = "198.51.100.2", HeloName = "out.relay.test" },
    ];

    public static ConnectionOrigin Origin(string user) =>
        new(1001, user, new IPEndPoint(IPAddress.Loopback, 40000), ScriptedConnectorMx);

    public static IPEndPoint ScriptedConnectorMx => TestDoubles.ScriptedConnector.Mx;

    public static RelayPool NewPool(int threshold = 5) =>
        new(Relays, new BurnOptions { Threshold = threshold }, [], TimeProvider.System);
}
