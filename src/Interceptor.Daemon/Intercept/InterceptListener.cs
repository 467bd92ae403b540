using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Core.Pool;
using Interceptor.Core.Replies;
using Interceptor.Core.Threading;
using Interceptor.Daemon.Attribution;
using Interceptor.Daemon.Fairness;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Scan;
using Interceptor.Smtp.Pool;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// Accepts redirected connections on 127.0.0.1 and ::1 (loopback only: never an open relay) and runs one
/// attributed, lock-step relay session per connection. As a hosted service it is started last (it accepts once the table
/// is in place and every other part runs) and stopped first: it stops accepting and lets the sessions finish within
/// <see cref="ShutdownGrace"/>, then cancels the rest (they get 421) while the other parts still run.
/// Binding comes earlier and apart (<see cref="Bind"/>, see ListenerBinding): the port must be ours before the table
/// redirects to it.
/// </summary>
public sealed class InterceptListener : IHostedService, IAsyncDisposable
{
    /// <summary>How long open sessions may go on after SIGTERM before they are cancelled.</summary>
    public static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(10);

    /// <summary>How long cancelled sessions get to say 421 and end.</summary>
    private static readonly TimeSpan AbortWait = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan RefusalWriteTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A client over the total cap gets its 421 within this, or is closed without it.</summary>
    private static readonly TimeSpan OverCapWriteTimeout = TimeSpan.FromSeconds(2);
    private readonly InterceptorOptions _options;
    private readonly ConnectionAttributor _attributor;
    private readonly ITransactionRecorder _recorder;
    private readonly ILogger _logger;
    private readonly List<Socket> _listeners = [];
    private readonly CancellationTokenSource _stopAccepting = new();
    private readonly List<Task> _acceptLoops = [];

    // Listen.MaxConnections sessions, registered before they run; and a few more slots for telling those over it why.
    private readonly ConnectionDispatcher _sessions;
    private readonly ConnectionSlots _refusalSlots = new(DescriptorBudget.RefusalsInFlight);
    private readonly LogThrottle _capReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private readonly SmtpReply _overCap;

    private readonly IMailPolicy _policy;
    private readonly ProcessAttribution? _processes;
    private readonly UpstreamConnectionCache _upstreams;
    private readonly UpstreamDescriptorGate? _upstreamDescriptors;
    private readonly IUpstreamSource _source;
    private readonly MessagePipeline _pipeline;

    // Every session's work runs through this, round-robin by user (issue 19): see FairShareScheduler.
    private readonly FairShareScheduler _fairShare;
    private readonly FloodPacing _pacing;

    public InterceptListener(
        InterceptorOptions options,
        ConnectionAttributor attributor,
        ITransactionRecorder recorder,
        ILogger logger,
        IMailPolicy policy,
        ProcessAttribution? processes = null,
        MessagePipeline? pipeline = null,
        RelayPool? pool = null,
        IRelayPoolObserver? poolObserver = null,
        RelayCredentials? relayCredentials = null,
        int maxUpstreams = 0)
    {
        _policy = policy;
        _processes = processes;
        _options = options;
        _attributor = attributor;
        _recorder = recorder;
        _logger = logger;
        var maxConnections = options.Listen.MaxConnections > 0 ? options.Listen.MaxConnections : DescriptorBudget.DefaultMaxConnections;
        _sessions = new ConnectionDispatcher("listener", maxConnections, ServeAsync, logger, serveOnAcceptingThread: true);
        _pacing = new FloodPacing(options.Fairness, logger);
        _fairShare = new FairShareScheduler(FairShareScheduler.DefaultConcurrency, e => logger.SessionFailed(e, 0),
            setThreadNice: ThreadNice.CanLowerAgain(FairShareScheduler.DemotedNice) ? ThreadNice.TrySet : null,
            pace: _pacing.Settings, onPaceChanged: _pacing.Changed);
        if (_fairShare.Demotes)
        {
            // Pool threads born of a demoted pump start other work at 0 (the scheduler's pumps see to their own).
            ThreadDemotion.EnableNormalizing(ThreadNice.TrySet);
            logger.CrowdedUsersDemoted(FairShareScheduler.DemotedNice);
        }
        else
        {
            logger.CrowdedUsersNotDemoted();
        }

        if (!ThreadSchedulingPolicy.CanSetBatch())
        {
            logger.HelperThreadsNotBatch();
        }

        _overCap = new SmtpReply(421, "4.7.0", $"too many connections to this host's mail relay ({maxConnections}, Listen.MaxConnections); try later");

        // The idle upstream sessions are part of the descriptor budget: never more than the sessions that made them, nor
        // more than Relay.ReuseMaxIdleTotal.
        var upstream = UpstreamSettings.From(options.Relay);
        _pipeline = pipeline ?? MessagePipeline.Default(options.Relay.HeloName, options.Trace.IncludeProcess);
        // Every upstream connection, direct, to a pool relay or for a held message, opens through one gate sized by the
        // budget (DescriptorBudget.Upstreams): with idle clients giving theirs back there are fewer than sessions.
        _upstreamDescriptors = maxUpstreams > 0 ? new UpstreamDescriptorGate(maxUpstreams) : null;
        var maxIdle = Math.Min(upstream.Reuse.MaxIdleTotal, DescriptorBudget.IdleUpstreamsFor(maxConnections, options.Relay.ReuseConnections));
        _upstreams = new UpstreamConnectionCache(
            upstream with { Reuse = upstream.Reuse with { MaxIdleTotal = Math.Max(1, maxUpstreams > 0 ? Math.Min(maxIdle, maxUpstreams) : maxIdle) } },
            descriptors: _upstreamDescriptors);
        _source = SourceFor(options, _upstreams, pool, poolObserver, relayCredentials);
    }

    /// <summary>
    /// The original destination (today's, and the default) unless a relay mode uses the pool (issue 15): then the mode
    /// selector over the same cache and the pool (relay sessions are kept there too, keyed by relay and login).
    /// </summary>
    private static IUpstreamSource SourceFor(
        InterceptorOptions options, UpstreamConnectionCache direct, RelayPool? pool, IRelayPoolObserver? observer, RelayCredentials? credentials)
    {
        if (options.Relay.ModeByUser.Values.Append(options.Relay.Mode).All(m => m == RelayMode.OriginalDestination))
        {
            return direct;
        }

        pool ??= new RelayPool(options.Relay.Smarthosts, options.Burn, [], TimeProvider.System);
        observer ??= NullRelayPoolObserver.Instance;
        var smarthosts = new PoolUpstreamSource(options.Relay.Smarthosts, pool, observer, credentials ?? RelayCredentials.Empty, direct);
        return new RelayModeSource(options.Relay, direct, smarthosts, pool, observer);
    }

    /// <summary>STARTTLS towards clients (ClientTls.Mode Mint); null: not offered.</summary>
    public Interceptor.Smtp.Tls.ClientTlsServer? ClientTls { get; init; }

    /// <summary>Where sessions' mail goes (the original destination, or the relay pool by Relay.Mode): also held
    /// messages once released, so they take the route they would have taken.</summary>
    public IUpstreamSource Source => _source;

    /// <summary>The cap on upstream connections open at once (null: none), for the metrics.</summary>
    public UpstreamDescriptorGate? UpstreamDescriptors => _upstreamDescriptors;

    /// <summary>Idle upstream sessions kept for the next client (Relay.ReuseConnections).</summary>
    public UpstreamConnectionCache Upstreams => _upstreams;

    /// <summary>Our bound listener sockets, for the check that nobody else listens on the port (ListenerGuard).</summary>
    public IReadOnlyList<Socket> Sockets => _listeners;

    public IReadOnlyList<IPEndPoint> Endpoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToList();

    public int ActiveSessions => _sessions.Active;

    /// <summary>The share of a core a flood among others may take now (null: not paced), and how often one was held.</summary>
    public (double? Share, long Holds) FloodPace => (_fairShare.PacedShare, _fairShare.PacedHolds);

    /// <summary>Binds both loopback listeners; throws SocketException (e.g. address in use) before any rule changes.</summary>
    public void Bind()
    {
        foreach (var address in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (address.AddressFamily == AddressFamily.InterNetworkV6)
            {
                socket.DualMode = false;
            }

            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(address, _options.Listen.Port));
            socket.Listen(BacklogFor(_sessions.Capacity));
            _listeners.Add(socket);
        }
    }

    /// <summary>
    /// The kernel's queue of connections not yet accepted: a burst of connects (a mass mailer starting thousands of
    /// workers at once, a restart with clients retrying) waits there while the accept loop catches up, instead of
    /// having SYNs dropped (the client retries after 1 s, 3 s, 7 s). Sized to the session cap, at least 1,024 (as
    /// before) and at most 65,535; Linux silently truncates it to net.core.somaxconn (4,096 by default since 5.4).
    /// </summary>
    internal static int BacklogFor(int maxConnections) => Math.Clamp(maxConnections, 1024, 65535);

    /// <summary>Starts accepting (hosted service: after the table and the other parts are up).</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Start();
        return Task.CompletedTask;
    }

    /// <summary>Stops accepting and drains the sessions (hosted service: first to stop).</summary>
    public Task StopAsync(CancellationToken cancellationToken) => StopAsync(ShutdownGrace);

    public void Start()
    {
        foreach (var listener in _listeners)
        {
            var loop = new AcceptLoop($"listener {listener.LocalEndPoint}", listener.AcceptAsync, Dispatch, _logger);
            _acceptLoops.Add(Task.Run(() => loop.RunAsync(_stopAccepting.Token)));
        }
    }

    /// <summary>Registers an accepted connection under the cap and runs it, or refuses it; never blocks.</summary>
    private void Dispatch(Socket accepted)
    {
        if (_sessions.TryDispatch(accepted))
        {
            return;
        }

        var answered = _refusalSlots.TryTake();
        if (_capReport.TryReport(out var count, out var span))
        {
            _logger.ConnectionCapReached(_sessions.Capacity, count, span.TotalSeconds, DescriptorBudget.RefusalsInFlight, AcceptLoop.ReportInterval.TotalSeconds);
        }

        if (answered)
        {
            _ = RefuseOverCapAsync(accepted);
        }
        else
        {
            // Even a 421 would cost a descriptor for a while: the descriptors are what the cap protects.
            accepted.Dispose();
        }
    }

    private async Task RefuseOverCapAsync(Socket socket)
    {
        try
        {
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            await InboundSession.RefuseAsync(stream, _overCap, OverCapWriteTimeout);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // The client is gone; it was refused anyway.
        }
        finally
        {
            _refusalSlots.Return();
        }
    }

    /// <summary>One connection, run by the dispatcher (which registered it and removes it when this ends).</summary>
    private async Task ServeAsync(Socket socket, long id, CancellationToken shutdown)
    {
        IDisposable? scope = null;
        LocatedConnection? located = null;
        try
        {
            socket.NoDelay = true;

            // The stream first: reading the original destination of a non-redirected socket flips Socket.Connected.
            await using var stream = new NetworkStream(socket, ownsSocket: true);

            // After the stream (whose constructor refuses a non-blocking socket): the session's LineReader then takes a
            // command that has already arrived with one receive call instead of a peek and a read. Every read and write
            // of the session is asynchronous, which a non-blocking socket leaves as it was.
            socket.Blocking = false;

            // On the accepting socket thread while one netlink query and the caches answer (a pool hop is ~0.2 ms of
            // the greeting's latency); to the pool for everything else: refusals, conntrack, NSS, a look at /etc/subuid.
            // Only while the scheduler is idle: under a flood, a flooder's connections started here made another
            // user's completions wait behind them on the socket threads (bench flood phase, raised limits: x5.75).
            // The client's socket stays claimed by this connection until it ends (see ClientSocketClaims).
            located = _fairShare.IsIdle ? _attributor.TryLocateQuickly(socket) : null;
            if ((located is { } quickly ? _attributor.TryResolveWithoutBlocking(quickly) : null) is not { } attributed)
            {
                await ThreadPoolContext.SwitchTo();
                located ??= _attributor.Locate(socket);
                attributed = _attributor.Resolve(located.Value);
            }

            var (origin, inode, refusal) = attributed;
            if (origin is null)
            {
                await InboundSession.RefuseAsync(stream, refusal!, RefusalWriteTimeout);
                return;
            }

            // From here on every line about this connection, whichever component writes it (its failure too), names its
            // user and session.
            scope = _logger.BeginSession(id, origin);
            var capped = await _policy.OpenConnectionAsync(origin.Uid, origin.User, shutdown);
            if (capped is not null)
            {
                await InboundSession.RefuseAsync(stream, capped, RefusalWriteTimeout);
                return;
            }

            try
            {
                _processes?.Begin(origin, inode);
                _logger.SessionStarted(origin.Uid, origin.User, origin.Client, origin.OriginalDestination);
                await _fairShare.ContextFor(origin.Uid).RunAsync(async () =>
                {
                    await using var session = new InboundSession(stream, origin, _options, _recorder, _logger, _policy, _source) { Pipeline = _pipeline, ClientTls = ClientTls };
                    await session.RunAsync(shutdown);
                });
            }
            finally
            {
                _policy.CloseConnection(origin.Uid);
            }
        }
        catch (Exception e)
        {
            // A fault in one session must never take the daemon down; log it loudly.
            _logger.SessionFailed(e, id);
        }
        finally
        {
            // After the stream's disposal, so the daemon's side is closed first: a client that reads on sees the FIN and
            // its socket leaves ESTABLISHED. One that stopped reading stays ESTABLISHED, unheld, until the kernel gives
            // up on it, which can only lure a connection NAT moves onto it to its own owner, who stopped reading.
            if (located is { } claimed)
            {
                _attributor.Release(claimed);
            }

            scope?.Dispose();
        }
    }

    /// <summary>Stops accepting, lets sessions finish for a grace period, then cancels the rest (they get 421).</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        await _stopAccepting.CancelAsync();
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }

        await Task.WhenAll(_acceptLoops).WaitAsync(TimeSpan.FromSeconds(1)).ContinueWith(_ => { }, TaskScheduler.Default);
        await _sessions.DrainAsync(grace, AbortWait);

        // Idle upstream sessions end politely with QUIT; those still held by a session are closed as it ends.
        await _upstreams.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        _sessions.Dispose();
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }

        await _upstreams.DisposeAsync();
        _upstreamDescriptors?.Dispose();
        _stopAccepting.Dispose();
        _pacing.Dispose();
    }
}
