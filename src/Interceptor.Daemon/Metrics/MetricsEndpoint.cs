using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Metrics;
using Interceptor.Core.Options;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
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
/// Started and stopped as one piece, so it fits a hosted service as it is. A port another socket holds (a customer can
/// bind an unprivileged port while the daemon restarts) does not stop the daemon: the endpoint says who holds it and
/// tries again every <see cref="BindRetryInterval"/>, while mail is relayed as usual.
/// </summary>
public sealed partial class MetricsEndpoint(IPEndPoint endpoint, IReadOnlyList<IMetricsSource> sources, ILoggerFactory loggers) : IHostedService, IAsyncDisposable
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

    /// <summary>How often a port another socket holds is tried again.</summary>
    public static readonly TimeSpan BindRetryInterval = TimeSpan.FromSeconds(5);

    /// <summary>The most holders of a taken port one log line names.</summary>
    public const int HoldersNamed = 3;

    /// <summary>At most one line per this while the port stays held.</summary>
    public static readonly TimeSpan HeldPortReportInterval = TimeSpan.FromMinutes(1);

    /// <summary>Series per per-user metric (users × outcomes or reasons); beyond it, OpenTelemetry's overflow series.</summary>
    public const int PerUserSeriesLimit = 20_000;

    private readonly ILogger _logger = loggers.CreateLogger("metrics");
    private readonly PeerSlots _slots = new(DescriptorBudget.MetricsConnections, ConnectionsPerOwner, KeptForScrapers);
    private readonly LogThrottle _capReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private readonly LogThrottle _ownerReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private readonly LogThrottle _tokenReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private readonly LogThrottle _heldReport = new(HeldPortReportInterval, TimeProvider.System);
    private readonly CancellationTokenSource _stopping = new();
    private MeterProvider? _meters;
    private WebApplication? _web;
    private Task? _retrying;
    private DateTimeOffset? _heldSince;

    /// <summary>
    /// The owner of the process that made a connection (<see cref="Attribution.ConnectionAttributor.DirectPeerOwner"/>),
    /// null when not found; not set, only the endpoint's cap applies.
    /// </summary>
    public Func<System.Net.Sockets.Socket, uint?>? OwnerOf { get; init; }

    /// <summary>
    /// The owner of a sub-UID's range (/etc/subuid), for the line naming who holds the port: the kernel's socket table
    /// gives raw uids, which no attribution has mapped. None by default.
    /// </summary>
    public Func<uint, Core.Attribution.SubordinateUidOwner?> SubordinateOwnerOf { get; init; } = _ => null;

    /// <summary>The uids the scraper runs as (root and Metrics.ScraperUsers): <see cref="KeptForScrapers"/> slots are theirs.</summary>
    public IReadOnlySet<uint> Scrapers { get; init; } = new HashSet<uint> { 0 };

    /// <summary>Metrics.BearerTokenFile's token, which every request must send; null: none asked.</summary>
    public MetricsToken? Token { get; init; }

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

        if (!await TryListenAsync(retrying: false, cancellationToken))
        {
            _retrying = Task.Run(() => RetryListenAsync(_stopping.Token), CancellationToken.None);
        }
    }

    /// <summary>
    /// Starts a web host on the endpoint; false when another socket holds the port (said in the log, who holds it), and
    /// the host is gone again. Any other failure to listen (an address this host lacks) is the configuration's and stops
    /// the daemon at start; once running (<paramref name="retrying"/>), the endpoint keeps trying.
    /// </summary>
    private async Task<bool> TryListenAsync(bool retrying, CancellationToken cancellationToken)
    {
        var web = BuildWeb();
        try
        {
            await web.StartAsync(cancellationToken);
        }
        catch (Exception e) when (IsAddressInUse(e))
        {
            await web.DisposeAsync();
            _heldSince ??= DateTimeOffset.UtcNow;
            if (_heldReport.TryReport(out var attempts, out _))
            {
                _logger.PortHeld(endpoint, Holders(), attempts, BindRetryInterval.TotalSeconds);
            }

            return false;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await web.DisposeAsync();
            if (!retrying)
            {
                _logger.CannotListen(endpoint, e.Message, "stopping");
                throw new DaemonStartupException(3, $"metrics: cannot listen on {endpoint}: {e.Message}", e);
            }

            if (_heldReport.TryReport(out _, out _))
            {
                _logger.CannotListen(endpoint, e.Message, $"tried again every {BindRetryInterval.TotalSeconds:0} s, at most one such line a minute");
            }

            return false;
        }
        catch
        {
            await web.DisposeAsync();
            throw;
        }

        _web = web;
        var address = web.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BoundEndpoint = new IPEndPoint(endpoint.Address, new Uri(address).Port);
        return true;
    }

    private async Task RetryListenAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(BindRetryInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping))
            {
                if (await TryListenAsync(retrying: true, stopping))
                {
                    _logger.ListeningAtLast(endpoint, (DateTimeOffset.UtcNow - _heldSince!.Value).TotalSeconds);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // Nothing else is expected here (TryListenAsync keeps its failures); should something come, the endpoint stays
            // down, and says so, rather than the stop rethrowing it and leaving the meters undisposed.
            _logger.CannotListen(endpoint, e.Message, "no longer tried until the daemon restarts");
        }
    }

    private static bool IsAddressInUse(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is AddressInUseException or SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
            {
                return true;
            }
        }

        return false;
    }

    private WebApplication BuildWeb()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        // Kestrel's and the web host's own lines only from Warning on: a line per scrape would fill the journal.
        // The host's own "Hosting failed to start", with a stack, would come every few seconds while the port is held:
        // TryListenAsync says it in one line.
        builder.Logging.AddProvider(new DaemonLoggers(loggers)).SetMinimumLevel(LogLevel.Warning)
            .AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
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
        if (Token is { } token)
        {
            web.Use(next => token.Guard(next, _logger, _tokenReport));
        }

        web.UseOpenTelemetryPrometheusScrapingEndpoint(_meters, predicate: null, path: "/metrics", configureBranchedPipeline: null, optionsName: null);
        return web;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // The retries first: one that is starting a host finishes (or gives up) before the host is stopped.
        await _stopping.CancelAsync();
        if (_retrying is { } retrying)
        {
            _retrying = null;
            await retrying;
        }

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
