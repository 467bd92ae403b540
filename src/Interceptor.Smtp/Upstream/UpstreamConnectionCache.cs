using System.Net;
using Interceptor.Core.Threading;
using Interceptor.Smtp.Session;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// When an idle upstream session may be kept and handed on (Relay.Reuse* keys). <paramref name="MaxIdleTotal"/> bounds
/// the sum over all destinations: spam to thousands of different MXs must not leave thousands of idle connections.
/// </summary>
public sealed record UpstreamReuse(bool Enabled, TimeSpan IdleTime, TimeSpan MaxAge, int MaxMessages, int MaxIdlePerDestination, int MaxIdleTotal = 1000)
{
    public static readonly UpstreamReuse Off = new(false, TimeSpan.Zero, TimeSpan.Zero, 0, 0);
}

/// <summary>
/// Upstream sessions whose client has left, kept open for a short while and handed to the next client that goes to
/// the same destination — what Postfix's connection cache does. Lock-step is unchanged: the upstream never sees the
/// client's EHLO (we greet with our own name), so a session between transactions carries no client state; one
/// that may still hold a transaction is reset first, and one that broke, said 421 or left an operation unfinished
/// is never kept. Each idle session belongs to the cache alone until it is taken, then to one client alone.
/// As an <see cref="IUpstreamSource"/> it is the "original destination" kind: each client's upstream is where it was going.
/// </summary>
public sealed class UpstreamConnectionCache : IUpstreamSource, IAsyncDisposable
{
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);
    private readonly UpstreamSettings _settings;
    private readonly UpstreamReuse _reuse;
    private readonly IUpstreamConnector _connector;
    private readonly UpstreamDescriptorGate? _descriptors;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Stack<IdleSession>> _idle = new(StringComparer.Ordinal);
    private readonly Timer? _sweeper;
    private int _idleCount;
    private long _reused;
    private bool _disposed;

    /// <param name="descriptors">The cap on upstream connections (the descriptor budget's): every new connection,
    /// direct or through <see cref="Connector"/>, takes a slot; a full gate ends this cache's oldest idle session, and
    /// no session is kept idle while an opener waits for a slot. Null: no cap.</param>
    public UpstreamConnectionCache(UpstreamSettings settings, IUpstreamConnector? connector = null, UpstreamDescriptorGate? descriptors = null)
    {
        _settings = settings;
        _connector = connector ?? SocketUpstreamConnector.Instance;
        if (descriptors is not null)
        {
            _descriptors = descriptors;
            _connector = new GatedUpstreamConnector(_connector, descriptors);
            descriptors.ReclaimIdle = TryCloseOneIdle;
        }

        _reuse = settings.Reuse;
        if (_reuse.Enabled)
        {
            var period = TimeSpan.FromMilliseconds(Math.Clamp(_reuse.IdleTime.TotalMilliseconds / 2, 50, 1000));
            _sweeper = new Timer(_ => SweepExpired(), null, period, period);
        }
    }

    /// <summary>The settings new sessions are opened with.</summary>
    public UpstreamSettings Settings => _settings;

    /// <summary>What new connections are opened with (through the descriptor gate when there is one): also the relay
    /// pool's, so that its connections count against the same cap.</summary>
    public IUpstreamConnector Connector => _connector;

    /// <summary>Idle sessions held right now.</summary>
    public int IdleCount => Volatile.Read(ref _idleCount);

    /// <summary>Sessions handed to a client instead of opening a new connection, since start.</summary>
    public long Reused => Interlocked.Read(ref _reused);

    /// <summary>A lease on the client's original destination, drawing on this cache.</summary>
    public UpstreamLease Lease(ConnectionOrigin origin) => new(RouteTo(origin.OriginalDestination));

    /// <summary>The route to one destination through this cache (a lease's, or one a mode selector wraps).</summary>
    public IUpstreamRoute RouteTo(IPEndPoint destination) => new DestinationRoute(this, destination);

    /// <summary>
    /// A session to <paramref name="destination"/>: an idle one that still looks open (unless <paramref name="fresh"/>),
    /// else a new connection (see <see cref="UpstreamConnection.OpenAsync"/> for the refusal and the exceptions).
    /// </summary>
    public Task<UpstreamHandOut> TakeAsync(IPEndPoint destination, bool fresh, CancellationToken cancellationToken) =>
        TakeAsync(UpstreamConnection.Format(destination), async token =>
        {
            var (connection, refusal) = await UpstreamConnection.OpenAsync(destination, _settings, _connector, token);
            return new UpstreamOpening(connection, refusal, UpstreamOpeningStep.Greeting);
        }, fresh, cancellationToken);

    /// <summary>
    /// A session kept under <paramref name="key"/> (an endpoint, or a pool relay and its login: see
    /// <see cref="UpstreamConnection.ReuseKey"/>) unless <paramref name="fresh"/>, else one <paramref name="open"/> makes.
    /// </summary>
    public async Task<UpstreamHandOut> TakeAsync(string key, Func<CancellationToken, Task<UpstreamOpening>> open, bool fresh, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(open);
        while (!fresh && TryTake(key) is { } idle)
        {
            if (idle.LooksIdleAndOpen() && idle.Age < _reuse.MaxAge)
            {
                Interlocked.Increment(ref _reused);
                return new UpstreamHandOut(idle, null, Reused: true);
            }

            // Closed by the upstream (or a 421 waiting) while it sat here, or too old: end it and try the next one.
            await CloseAsync(idle);
        }

        var opened = await open(cancellationToken);
        if (opened.Connection is { } connection)
        {
            connection.ReuseKey = key;
        }

        return new UpstreamHandOut(opened.Connection, opened.Refusal, Reused: false);
    }

    /// <summary>
    /// Takes back a session whose client is done with it: kept for the next client when it is healthy, within its
    /// age and message limits and there is room; otherwise ended with QUIT. Never throws.
    /// </summary>
    public async Task ReleaseAsync(UpstreamConnection connection)
    {
        if (!await ReadyForNextClientAsync(connection) || !TryKeep(connection))
        {
            await CloseAsync(connection);
        }
    }

    private async Task<bool> ReadyForNextClientAsync(UpstreamConnection connection)
    {
        if (!_reuse.Enabled || !connection.IsUsable || connection.Messages >= _reuse.MaxMessages || connection.Age >= _reuse.MaxAge)
        {
            return false;
        }

        if (connection.State == UpstreamState.Ready)
        {
            return true;
        }

        // The client left in a transaction (or the upstream kept one after refusing DATA): the next client must start clean.
        try
        {
            using var timeout = new CancellationTokenSource(CloseTimeout);
            var reply = await connection.RsetAsync(timeout.Token);
            return connection.State == UpstreamState.Ready;
        }
        catch (Exception e) when (e is UpstreamException or OperationCanceledException or IOException)
        {
            return false;
        }
    }

    private bool TryKeep(UpstreamConnection connection)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return false;
            }

            if (!_idle.TryGetValue(connection.ReuseKey, out var stack))
            {
                stack = new Stack<IdleSession>();
                _idle[connection.ReuseKey] = stack;
            }

            // An opener waiting for a descriptor gets this one's: closed now, not kept.
            if (stack.Count >= _reuse.MaxIdlePerDestination || _idleCount >= _reuse.MaxIdleTotal || _descriptors is { HasWaiters: true })
            {
                return false;
            }

            stack.Push(new IdleSession(connection, Environment.TickCount64));
            _idleCount++;
            return true;
        }
    }

    /// <summary>
    /// The most recently used idle session (a stack: the rest age out and close when traffic drops). An emptied stack
    /// stays for the next release to the same destination; the sweeper removes those left empty.
    /// </summary>
    private UpstreamConnection? TryTake(string key)
    {
        lock (_gate)
        {
            if (!_idle.TryGetValue(key, out var stack) || !stack.TryPop(out var idle))
            {
                return null;
            }

            _idleCount--;
            return idle.Connection;
        }
    }

    /// <summary>
    /// Ends the idle session that has waited longest, whatever its destination (QUIT, then closed in the background):
    /// the descriptor gate asks for it when it has no slot free. False when none is idle.
    /// </summary>
    public bool TryCloseOneIdle()
    {
        UpstreamConnection? oldest;
        lock (_gate)
        {
            // Each stack's oldest entry is its bottom (last enumerated); idle sessions are few, and this runs only when full.
            Stack<IdleSession>? from = null;
            var since = long.MaxValue;
            foreach (var stack in _idle.Values)
            {
                if (stack.Count > 0 && stack.Last().Since < since)
                {
                    since = stack.Last().Since;
                    from = stack;
                }
            }

            if (from is null)
            {
                return false;
            }

            var kept = from.Reverse().Skip(1).ToList();
            oldest = from.Last().Connection;
            from.Clear();
            foreach (var idle in kept)
            {
                from.Push(idle);
            }

            _idleCount--;
        }

        _ = CloseAsync(oldest);
        return true;
    }

    private void SweepExpired()
    {
        var expired = new List<UpstreamConnection>();
        lock (_gate)
        {
            var oldest = Environment.TickCount64 - (long)_reuse.IdleTime.TotalMilliseconds;
            foreach (var (destination, stack) in _idle.ToList())
            {
                // Oldest entries sit at the bottom of the stack: rebuild it with those still fresh.
                var fresh = stack.Where(s => s.Since > oldest).Reverse().ToList();
                expired.AddRange(stack.Where(s => s.Since <= oldest).Select(s => s.Connection));
                if (fresh.Count == 0)
                {
                    _idle.Remove(destination);
                }
                else if (fresh.Count != stack.Count)
                {
                    _idle[destination] = new Stack<IdleSession>(fresh);
                }
            }

            _idleCount -= expired.Count;
        }

        foreach (var connection in expired)
        {
            _ = CloseAsync(connection);
        }
    }

    private static async Task CloseAsync(UpstreamConnection connection)
    {
        // Often started from whichever session needed room in the cache, of any user: the QUIT is nobody's step, and its
        // reply read must neither count as that session's wait nor yield into that user's turn (changed for this flow only).
        StepLanes.Current = null;
        try
        {
            using var timeout = new CancellationTokenSource(CloseTimeout);
            await connection.QuitAsync(timeout.Token);
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    /// <summary>Ends every idle session with QUIT; sessions released afterwards are closed at once.</summary>
    public async ValueTask DisposeAsync()
    {
        List<UpstreamConnection> all;
        lock (_gate)
        {
            _disposed = true;
            all = _idle.Values.SelectMany(s => s).Select(s => s.Connection).ToList();
            _idle.Clear();
            _idleCount = 0;
        }

        if (_sweeper is not null)
        {
            await _sweeper.DisposeAsync();
        }

        await Task.WhenAll(all.Select(CloseAsync));
    }

    private readonly record struct IdleSession(UpstreamConnection Connection, long Since);

    /// <summary>The route of one lease: the client's original destination.</summary>
    private sealed class DestinationRoute(UpstreamConnectionCache cache, IPEndPoint destination) : IUpstreamRoute
    {
        public string Name { get; } = UpstreamConnection.Format(destination);

        public Task<UpstreamHandOut> TakeAsync(bool fresh, CancellationToken cancellationToken) => cache.TakeAsync(destination, fresh, cancellationToken);

        public Task GiveBackAsync(UpstreamConnection connection) => cache.ReleaseAsync(connection);
    }
}
