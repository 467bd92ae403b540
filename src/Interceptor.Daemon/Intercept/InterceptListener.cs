using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Attribute;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Upstream;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// Accepts redirected connections on 127.0.0.1 and ::1 (loopback only: never an open relay) and runs one
/// attributed, lock-step relay session per connection.
/// </summary>
public sealed class InterceptListener : IAsyncDisposable
{
    private static readonly TimeSpan RefusalWriteTimeout = TimeSpan.FromSeconds(5);
    private readonly InterceptorOptions _options;
    private readonly ConnectionAttributor _attributor;
    private readonly ITransactionRecorder _recorder;
    private readonly ILogger _logger;
    private readonly List<Socket> _listeners = [];
    private readonly ConcurrentDictionary<int, Task> _sessions = new();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly CancellationTokenSource _stopAccepting = new();
    private readonly List<Task> _acceptLoops = [];
    private int _nextSessionId;

    private readonly MailPolicy? _policy;
    private readonly ProcessAttribution? _processes;
    private readonly UpstreamConnectionCache _upstreams;

    public InterceptListener(
        InterceptorOptions options,
        ConnectionAttributor attributor,
        ITransactionRecorder recorder,
        ILogger logger,
        MailPolicy? policy = null,
        ProcessAttribution? processes = null)
    {
        _policy = policy;
        _processes = processes;
        _options = options;
        _attributor = attributor;
        _recorder = recorder;
        _logger = logger;
        _upstreams = new UpstreamConnectionCache(UpstreamSettings.From(options.Relay));
    }

    /// <summary>Idle upstream sessions kept for the next client (Relay.ReuseConnections).</summary>
    public UpstreamConnectionCache Upstreams => _upstreams;

    /// <summary>Our bound listener sockets, for the check that nobody else listens on the port (ListenerGuard).</summary>
    public IReadOnlyList<Socket> Sockets => _listeners;

    public IReadOnlyList<IPEndPoint> Endpoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToList();

    public int ActiveSessions => _sessions.Count;

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
            socket.Listen(1024);
            _listeners.Add(socket);
        }
    }

    public void Start()
    {
        foreach (var listener in _listeners)
        {
            _acceptLoops.Add(Task.Run(() => AcceptLoopAsync(listener)));
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopAccepting.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await listener.AcceptAsync(_stopAccepting.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || _stopAccepting.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                continue;
            }
            catch (SocketException e)
            {
                // e.g. EMFILE: back off briefly instead of spinning; the kernel keeps the backlog.
                _logger.LogError("accept failed: {Reason}", e.Message);
                await Task.Delay(100);
                continue;
            }

            var id = Interlocked.Increment(ref _nextSessionId);
            _sessions[id] = HandleAsync(accepted, id);
        }
    }

    private async Task HandleAsync(Socket socket, int id)
    {
        await Task.Yield();
        try
        {
            socket.NoDelay = true;

            // The stream first: reading the original destination of a non-redirected socket flips Socket.Connected.
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            var (origin, inode, refusal) = _attributor.Attribute(socket);
            if (origin is null)
            {
                await InboundSession.RefuseAsync(stream, refusal!, RefusalWriteTimeout);
                return;
            }

            var capped = _policy is null ? null : await _policy.OpenConnectionAsync(origin.Uid, origin.User, _shutdown.Token);
            if (capped is not null)
            {
                await InboundSession.RefuseAsync(stream, capped, RefusalWriteTimeout);
                return;
            }

            try
            {
                _processes?.Begin(origin, inode);
                _logger.LogDebug("session uid={Uid} user={User} client={Client} dst={Destination}", origin.Uid, origin.User, origin.Client, origin.OriginalDestination);
                await using var session = new InboundSession(stream, origin, _options, _recorder, _logger, _policy, _upstreams);
                await session.RunAsync(_shutdown.Token);
            }
            finally
            {
                _policy?.CloseConnection(origin.Uid);
            }
        }
        catch (Exception e)
        {
            // A fault in one session must never take the daemon down; log it loudly.
            _logger.LogError(e, "session {SessionId} failed", id);
        }
        finally
        {
            _sessions.TryRemove(id, out _);
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
        var running = _sessions.Values.ToArray();
        var all = Task.WhenAll(running);
        if (await Task.WhenAny(all, Task.Delay(grace)) != all)
        {
            await _shutdown.CancelAsync();
            await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(5)));
        }

        // Idle upstream sessions end politely with QUIT; those still held by a session are closed as it ends.
        await _upstreams.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _shutdown.CancelAsync();
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }

        await _upstreams.DisposeAsync();
        _shutdown.Dispose();
        _stopAccepting.Dispose();
    }
}
