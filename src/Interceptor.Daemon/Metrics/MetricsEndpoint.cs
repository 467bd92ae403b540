using System.Net;
using Interceptor.Core.Metrics;
using Interceptor.Core.Options;
using Interceptor.Daemon.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Serves the layers' meters (<see cref="IMetricsSource"/>) as Prometheus text on GET /metrics at Metrics.Listen, a
/// loopback address: OpenTelemetry's Prometheus exporter on a Kestrel of its own (README, Monitoring, says why this
/// exporter). Nothing else is served (404). At most <see cref="DescriptorBudget.MetricsConnections"/> connections at
/// once, and <see cref="ConnectionsPerOwner"/> of one user's (<see cref="PeerSlots"/>): one more is closed at once (a
/// local user holding connections must not take the daemon's descriptors, nor every slot; a scraper asks once every few
/// seconds); request headers within <see cref="RequestTimeout"/>, idle connections closed after it,
/// and every connection closed after <see cref="ConnectionLifetime"/> whatever it does, so that nobody can keep a slot
/// with a request every few seconds or a response read slowly.
/// Started and stopped as one piece, so it fits a hosted service as it is.
/// </summary>
public sealed class MetricsEndpoint(IPEndPoint endpoint, IReadOnlyList<IMetricsSource> sources, ILoggerFactory loggers) : IHostedService, IAsyncDisposable
{
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The most a connection may live: Kestrel's own limits end only idle or stalled connections, and a local user who
    /// keeps eight connections busy (a request every 4 s, or a scrape read at Kestrel's minimum rate) would otherwise hold
    /// every slot and blind the monitoring. A scrape takes milliseconds; Prometheus simply reconnects.
    /// </summary>
    public static readonly TimeSpan ConnectionLifetime = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The most connections one user's processes may hold at once (her sub-UIDs' count as hers), when
    /// <see cref="OwnerOf"/> is set: a scrape needs one.
    /// </summary>
    public const int ConnectionsPerOwner = 2;

    /// <summary>The connections kept for <see cref="Scrapers"/>, when <see cref="OwnerOf"/> is set: no other user takes them.</summary>
    public const int KeptForScrapers = 2;

    /// <summary>Series per per-user metric (users × outcomes or reasons); beyond it, OpenTelemetry's overflow series.</summary>
    public const int PerUserSeriesLimit = 20_000;

    private readonly ILogger _logger = loggers.CreateLogger("metrics");
    private readonly PeerSlots _slots = new(DescriptorBudget.MetricsConnections, ConnectionsPerOwner, KeptForScrapers);
    private readonly LogThrottle _capReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private readonly LogThrottle _ownerReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private MeterProvider? _meters;
    private WebApplication? _web;

    /// <summary>
    /// The owner of the process that made a connection (<see cref="Attribution.ConnectionAttributor.DirectPeerOwner"/>),
    /// null when not found; not set, only the endpoint's cap applies.
    /// </summary>
    public Func<System.Net.Sockets.Socket, uint?>? OwnerOf { get; init; }

    /// <summary>The uids the scraper runs as (root and Metrics.ScraperUsers): <see cref="KeptForScrapers"/> slots are theirs.</summary>
    public IReadOnlySet<uint> Scrapers { get; init; } = new HashSet<uint> { 0 };

    /// <summary>Where it listens once started (the port chosen when Metrics.Listen asked for port 0, in tests).</summary>
    public IPEndPoint? BoundEndpoint { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _meters = Sdk.CreateMeterProviderBuilder()
            .AddMeter([.. sources.Select(s => s.Meter.Name).Distinct()])
            .AddView(instrument => instrument.Name.StartsWith("smtpi_user_", StringComparison.Ordinal)
                ? new MetricStreamConfiguration { CardinalityLimit = PerUserSeriesLimit }
                : null)
            .AddPrometheusExporter(exporter =>
            {
                // Every scrape sees the figures of that moment, as before; the scope labels and target_info would add
                // series and labels the rules and the dashboard never had.
                exporter.ScrapeResponseCacheDurationMilliseconds = 0;
                exporter.ScopeInfoEnabled = false;
                exporter.TargetInfoEnabled = false;
            })
            .Build();
        foreach (var source in sources)
        {
            source.RecordZeros();
        }

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        // Kestrel's and the web host's own lines only from Warning on: a line per scrape would fill the journal.
        builder.Logging.AddProvider(new DaemonLoggers(loggers)).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton<IHostLifetime, OwnedByTheDaemon>();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.RequestHeadersTimeout = RequestTimeout;
            kestrel.Limits.KeepAliveTimeout = RequestTimeout;
            kestrel.Limits.MaxRequestLineSize = 4096;
            kestrel.Limits.MaxRequestHeadersTotalSize = 4096;
            kestrel.Limits.MaxRequestBodySize = 0;
            kestrel.Listen(endpoint, listen =>
            {
                listen.Protocols = HttpProtocols.Http1;
                listen.Use(next => connection => ServeAndReleaseAsync(connection, next));
            });
        });
        builder.Services.RemoveAll<IConnectionListenerFactory>();
        builder.Services.AddSingleton<IConnectionListenerFactory>(new SharedAcceptLoopTransport(Admit, _logger));
        var web = builder.Build();
        web.UseOpenTelemetryPrometheusScrapingEndpoint(_meters, predicate: null, path: "/metrics", configureBranchedPipeline: null, optionsName: null);
        await web.StartAsync(cancellationToken);
        _web = web;
        var address = web.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BoundEndpoint = new IPEndPoint(endpoint.Address, new Uri(address).Port);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_web is { } web)
        {
            _web = null;
            await web.StopAsync(cancellationToken);
            await web.DisposeAsync();
        }

        _meters?.Dispose();
        _meters = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None);

    /// <summary>
    /// Takes a slot for a connection just accepted (on the transport's admission task, never a socket thread: the owner
    /// lookup may read /proc/net/tcp or /etc/subuid); over a cap, says which (at most once per 10 s each) and refuses it.
    /// </summary>
    private PeerSlots.Slot? Admit(System.Net.Sockets.Socket socket)
    {
        PeerSlots.Slot? slot = null;
        uint? owner = null;
        var refusal = PeerRefusal.Full;

        // Every slot held: no owner lookup for a connection that cannot be served anyway.
        if (_slots.InUse < _slots.Capacity)
        {
            owner = OwnerOf?.Invoke(socket);
            slot = _slots.TryTake(owner, unlimited: OwnerOf is null, scraper: owner is { } uid && Scrapers.Contains(uid), out refusal);
        }

        if (refusal == PeerRefusal.Full && _capReport.TryReport(out var count, out var span))
        {
            var kept = OwnerOf is null ? "" : $", {KeptForScrapers} of them kept for root and Metrics.ScraperUsers";
            _logger.ConnectionCapReached(_slots.Capacity, kept, count, span.TotalSeconds, AcceptLoop.ReportInterval.TotalSeconds);
        }
        else if (refusal == PeerRefusal.OwnerFull && _ownerReport.TryReport(out count, out span))
        {
            _logger.OwnerConnectionCapReached(owner is { } named ? $"uid {named}" : "owner not found", ConnectionsPerOwner, count, span.TotalSeconds, AcceptLoop.ReportInterval.TotalSeconds);
        }

        return slot;
    }

    /// <summary>Every connection Kestrel runs was admitted by the transport: its slot comes back when it ends.</summary>
    private static async Task ServeAndReleaseAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        try
        {
            using var lifetime = new CancellationTokenSource(ConnectionLifetime);
            using var abort = lifetime.Token.Register(connection.Abort);
            await next(connection);
        }
        finally
        {
            (connection.Items.TryGetValue(SharedAcceptLoopTransport.SlotKey, out var slot) ? slot as IDisposable : null)?.Dispose();
        }
    }

    /// <summary>The web host's lines go to the daemon's log (the factory stays the daemon's to dispose).</summary>
    private sealed class DaemonLoggers(ILoggerFactory loggers) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => loggers.CreateLogger(categoryName);

        public void Dispose()
        {
        }
    }

    /// <summary>The daemon owns the process's lifetime (signals, systemd): this small web host only starts and stops.</summary>
    private sealed class OwnedByTheDaemon : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
