using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// Runs the connections one listener accepted, at most <see cref="Capacity"/> at once, and knows exactly which are
/// running. As Kestrel's ConnectionDispatcher and ConnectionManager do, a connection is registered before anything of it
/// runs and removed by its own end, so the count (<see cref="Active"/>: `status`, metrics, systemd's STATUS=) is exact: an
/// end can only remove an entry that is already there. (Storing a connection's task after starting it let a connection
/// that ended first leave a stale entry behind.)
/// </summary>
/// <remarks>
/// The cap is a semaphore. <see cref="TryDispatch"/> never waits (the SMTP listener refuses over its cap);
/// <see cref="ReserveAsync"/> waits for a slot before the caller accepts, so that clients over the cap wait in the
/// kernel's backlog instead of in our descriptors (the control socket). The accepted socket belongs to the dispatcher
/// from then on: it is disposed when its connection ends, whatever <c>serve</c> did with it.
/// </remarks>
public sealed class ConnectionDispatcher : IDisposable
{
    private readonly string _name;
    private readonly Func<Socket, long, CancellationToken, Task> _serve;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentDictionary<long, TaskCompletionSource> _running = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly bool _serveOnAcceptingThread;
    private long _lastId;

    /// <param name="name">The listener, for log lines.</param>
    /// <param name="capacity">Connections that may run at once.</param>
    /// <param name="serve">Runs one connection (socket, id, a token cancelled when the connections are aborted at shutdown).</param>
    /// <param name="logger">Where a connection that fails outside its own handling is reported.</param>
    /// <param name="serveOnAcceptingThread">
    /// <paramref name="serve"/> starts on the accepting thread (a socket thread) and moves itself to the pool when it
    /// must block; otherwise every connection starts on the pool.
    /// </param>
    public ConnectionDispatcher(string name, int capacity, Func<Socket, long, CancellationToken, Task> serve, ILogger logger, bool serveOnAcceptingThread = false)
    {
        _serveOnAcceptingThread = serveOnAcceptingThread;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _name = name;
        _serve = serve;
        _logger = logger;
        Capacity = capacity;
        _slots = new SemaphoreSlim(capacity, capacity);
    }

    public int Capacity { get; }

    /// <summary>Connections registered and not yet ended.</summary>
    public int Active => _running.Count;

    /// <summary>Cancelled when <see cref="DrainAsync"/> gives up waiting: running connections end (with a 421, for SMTP).</summary>
    public CancellationToken Aborted => _abort.Token;

    /// <summary>Takes a slot and runs the connection; false (the socket untouched) when every slot is taken.</summary>
    public bool TryDispatch(Socket socket)
    {
        if (!_slots.Wait(0))
        {
            return false;
        }

        Run(socket);
        return true;
    }

    /// <summary>Waits for a slot; the caller then accepts and hands the socket to <see cref="DispatchReserved"/>, or gives the slot back with <see cref="CancelReservation"/>.</summary>
    public Task ReserveAsync(CancellationToken cancellationToken) => _slots.WaitAsync(cancellationToken);

    public void CancelReservation() => _slots.Release();

    /// <summary>Runs a connection in the slot reserved for it by <see cref="ReserveAsync"/>.</summary>
    public void DispatchReserved(Socket socket) => Run(socket);

    private void Run(Socket socket)
    {
        var id = Interlocked.Increment(ref _lastId);
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Registered first, then started: whatever the thread pool does, the end finds its entry.
        _running[id] = ended;
        _ = RunAsync(socket, id, ended);
    }

    private async Task RunAsync(Socket socket, long id, TaskCompletionSource ended)
    {
        try
        {
            // The accept loop goes back to accepting at once; the connection runs on the thread pool, and stays off the
            // socket threads until (for SMTP) its session runs under its user's context. The SMTP listener's own serve
            // starts here, in the accept loop's turn (its ThreadBudget), and leaves for the pool for anything beyond
            // the common path (InterceptListener.ServeAsync).
            if (!_serveOnAcceptingThread)
            {
                await ThreadPoolContext.SwitchTo();
            }

            await _serve(socket, id, _abort.Token);
        }
#pragma warning disable CA1031 // a fault in one connection must never reach the listener or the daemon
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.ConnectionFailed(e, _name, id);
        }
        finally
        {
            socket.Dispose();
            _running.TryRemove(id, out _);
            _slots.Release();
            ended.TrySetResult();
        }
    }

    /// <summary>
    /// Waits up to <paramref name="grace"/> for the running connections to end, then aborts the rest (<see cref="Aborted"/>)
    /// and waits up to <paramref name="abortWait"/> more. Returns how many still run. Call after the accepting stopped.
    /// </summary>
    public async Task<int> DrainAsync(TimeSpan grace, TimeSpan abortWait)
    {
        var all = Task.WhenAll(_running.Values.Select(c => c.Task));
        if (await Task.WhenAny(all, Task.Delay(grace)) != all)
        {
            await _abort.CancelAsync();
            await Task.WhenAny(all, Task.Delay(abortWait));
        }

        return Active;
    }

    /// <summary>
    /// Aborts whatever still runs. Neither the slots nor the token source are disposed: a connection still ending may
    /// release its slot or read the token after this.
    /// </summary>
    public void Dispose() => _abort.Cancel();
}
