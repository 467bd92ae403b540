namespace Interceptor.Linux;

/// <summary>A netlink socket that can be handed from one caller to the next while it is not faulted.</summary>
internal interface IPooledNetlinkSocket : IDisposable
{
    /// <summary>
    /// Set when the socket may hold an unread reply (timeout, malformed datagram): it must not
    /// serve another request, since that request could read the stale answer.
    /// </summary>
    bool Faulted { get; }
}

/// <summary>
/// Idle netlink sockets of one kind: each request takes one (or opens one), so concurrent requests never share a
/// socket and never read each other's replies; healthy sockets go back for reuse, up to a bound. Thread-safe.
/// </summary>
internal sealed class NetlinkSocketPool<TSocket>(Func<TSocket> open, int maxIdle) : IDisposable
    where TSocket : class, IPooledNetlinkSocket
{
    /// <summary>
    /// What a pool of the per-connection lookups keeps idle: two a core (the socket threads and the pool ask at once), at
    /// most 16, since idle sockets are never closed and come out of the descriptor budget's runtime reserve (two pools:
    /// the owner lookup's and conntrack's; a burst beyond opens sockets that are closed again on return).
    /// </summary>
    public static int PerConnectionIdle => Math.Clamp(Environment.ProcessorCount * 2, 4, 16);

    private readonly Lock _gate = new();
    private readonly Stack<TSocket> _idle = new();
    private bool _disposed;

    /// <summary>An idle socket, or a new one from the opener (whose exceptions pass through).</summary>
    public TSocket Rent()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_idle.TryPop(out var socket))
            {
                return socket;
            }
        }

        return open();
    }

    /// <summary>Keeps the socket for the next caller, or closes it when it is faulted or the pool is full.</summary>
    public void Return(TSocket socket)
    {
        if (!socket.Faulted)
        {
            lock (_gate)
            {
                if (!_disposed && _idle.Count < maxIdle)
                {
                    _idle.Push(socket);
                    return;
                }
            }
        }

        socket.Dispose();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            while (_idle.TryPop(out var socket))
            {
                socket.Dispose();
            }
        }
    }
}
