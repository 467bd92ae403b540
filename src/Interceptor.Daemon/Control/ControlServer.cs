using System.Net.Sockets;
using Interceptor.Core.Options;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Control;

/// <summary>
/// The admin's Unix socket (Control.SocketPath). Each connection: the kernel's credentials of the peer are checked
/// first (root or Control.AdminGroup, SO_PEERCRED), then one JSON request line is read and one JSON response line
/// written, and the connection is closed. Every step is bounded in time and size, and a fault in one connection
/// never reaches the daemon. As a hosted service it starts after the table is installed and stops after the SMTP
/// listener drained, so `status` answers during the drain.
/// </summary>
public sealed class ControlServer(AdminContext context, ILogger logger) : IHostedService, IAsyncDisposable
{
    /// <summary>The CLI sends its line at once; a peer that stalls longer is not a CLI.</summary>
    internal static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Bounds status, users, log and limits (status runs nft). Block and unblock are not cut short.</summary>
    internal static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(30);

    internal static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Admin requests are rare; more at once than this wait in the kernel's backlog (part of the descriptor budget).</summary>
    private const int MaxConcurrentConnections = DescriptorBudget.ControlConnections;

    private readonly CancellationTokenSource _stop = new();
    private ConnectionDispatcher? _connections;
    private Socket? _listener;
    private PeerAuthorization? _authorization;
    private AdminService? _service;
    private Task? _acceptLoop;
    private int _disposed;

    /// <summary>Replaces the group database check (tests).</summary>
    internal PeerAuthorization? Authorization { get; init; }

    /// <summary>Replaces the decision (tests, which run as root and so would always be admitted).</summary>
    internal Func<PeerCredentials, bool>? AdmitOverride { get; init; }

    /// <summary>How long a peer may take to send its request line; shorter in tests.</summary>
    internal TimeSpan ReadTimeout { get; init; } = RequestTimeout;

    /// <summary>Replaces the verbs' implementation (tests).</summary>
    internal AdminService? Service { get; init; }

    public string SocketPath { get; } = Path.GetFullPath(context.Options.Control.SocketPath);

    /// <summary>Admin connections being served.</summary>
    public int ActiveConnections => _connections?.Active ?? 0;

    /// <inheritdoc cref="Start"/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Start();
        return Task.CompletedTask;
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public Task StopAsync(CancellationToken cancellationToken) => DisposeAsync().AsTask();

    /// <summary>Resolves the admin group, creates the socket (see <see cref="ControlSocketFile"/>) and starts accepting.</summary>
    /// <exception cref="ControlSocketException">The admin group does not exist, or the socket cannot be created; the message says why.</exception>
    public void Start()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_listener is not null)
        {
            throw new InvalidOperationException("the control server is already started");
        }

        _authorization = Authorization ?? PeerAuthorization.ForGroup(context.Options.Control.AdminGroup);
        _service = Service ?? new AdminService(context, logger);
        _listener = ControlSocketFile.Bind(SocketPath, _authorization.AdminGid, logger);
        _connections = new ConnectionDispatcher("control socket", MaxConcurrentConnections, ServeAsync, logger);
        var loop = new AcceptLoop("control socket", AcceptWithinCapAsync, Dispatch, logger);
        _acceptLoop = Task.Run(() => loop.RunAsync(_stop.Token));
        logger.Ready(
            SocketPath,
            _authorization.AdminGid is null ? " only (Control.AdminGroup is not set)" : $" and group {_authorization.GroupName} (gid {_authorization.AdminGid})");
    }

    /// <summary>Takes a slot first, then accepts: over the cap, clients wait in the kernel's backlog, not in our descriptors.</summary>
    private async ValueTask<Socket> AcceptWithinCapAsync(CancellationToken cancellationToken)
    {
        await _connections!.ReserveAsync(cancellationToken);
        try
        {
            return await _listener!.AcceptAsync(cancellationToken);
        }
        catch
        {
            _connections.CancelReservation();
            throw;
        }
    }

    /// <summary>Runs an accepted connection in the slot reserved for it.</summary>
    private void Dispatch(Socket client) => _connections!.DispatchReserved(client);

    private async Task ServeAsync(Socket client, long id, CancellationToken _)
    {
        try
        {
            using (client)
            {
                await ServeCoreAsync(client);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer went away or was too slow: nothing to answer.
            logger.ConnectionEnded(id, e.Message);
        }
#pragma warning disable CA1031 // one admin connection must never take the daemon down; the fault is logged in full
        catch (Exception e)
#pragma warning restore CA1031
        {
            logger.ConnectionFailed(e, id);
        }
    }

    private async Task ServeCoreAsync(Socket client)
    {
        PeerCredentials peer;
        try
        {
            peer = PeerCredentials.Of(client);
        }
        catch (LinuxInteropException e)
        {
            logger.PeerWithoutCredentials(e.Message);
            return;
        }

        await using var stream = new NetworkStream(client, ownsSocket: false);
        if (!(AdmitOverride ?? _authorization!.Admits)(peer))
        {
            logger.PeerRefused(peer.Uid, peer.Gid, peer.Pid);
            await DiscardRequestAsync(stream);
            await WriteAsync(stream, ControlResponse.Failure("", ControlErrors.PermissionDenied, _authorization!.DenialMessage));
            return;
        }

        var response = await AnswerAsync(stream, peer);
        if (response is not null)
        {
            await WriteAsync(stream, response);
        }
    }

    /// <summary>
    /// Reads a refused peer's request without looking at it: closing a Unix socket with unread data resets the
    /// connection, and the peer would see "connection reset" instead of the refusal.
    /// </summary>
    private async Task DiscardRequestAsync(NetworkStream stream)
    {
        using var readTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        readTimeout.CancelAfter(ReadTimeout);
        try
        {
            await ReadLineAsync(stream, ControlRequest.MaxBytes, readTimeout.Token);
        }
        catch (Exception e) when (e is ControlException or OperationCanceledException && !_stop.IsCancellationRequested)
        {
            // Too long or too slow: it gets the refusal anyway.
        }
    }

    /// <summary>Reads and answers the request; null when the peer sent nothing at all (a liveness probe).</summary>
    private async Task<ControlResponse?> AnswerAsync(NetworkStream stream, PeerCredentials peer)
    {
        byte[]? line;
        using (var readTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            readTimeout.CancelAfter(ReadTimeout);
            try
            {
                line = await ReadLineAsync(stream, ControlRequest.MaxBytes, readTimeout.Token);
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                return ControlResponse.Failure("", ControlErrors.BadRequest, $"no complete request line within {ReadTimeout.TotalSeconds:0.#} s");
            }
            catch (ControlException e)
            {
                return ControlResponse.Failure("", e.Kind, e.Message);
            }
        }

        if (line is null)
        {
            return null;
        }

        ControlRequest request;
        try
        {
            request = ControlRequest.Parse(line);
        }
        catch (ControlException e)
        {
            return ControlResponse.Failure("", e.Kind, e.Message);
        }

        if (request.User is null)
        {
            logger.Request(peer.Uid, peer.Pid, request.Verb);
        }
        else
        {
            logger.RequestForUser(peer.Uid, peer.Pid, request.Verb, request.User);
        }

        using var queryTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        queryTimeout.CancelAfter(QueryTimeout);
        try
        {
            return await _service!.HandleAsync(request, peer, queryTimeout.Token);
        }
        catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
        {
            return ControlResponse.Failure(request.Verb, ControlErrors.Failed, $"{request.Verb} did not finish within {QueryTimeout.TotalSeconds:0} s");
        }
#pragma warning disable CA1031 // a bug in one verb is answered and logged, not left as a silent hang-up
        catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
        {
            logger.VerbFailed(e, request.Verb);
            return ControlResponse.Failure(request.Verb, ControlErrors.Failed, $"internal error: {e.Message}");
        }
    }

    /// <summary>
    /// Bytes up to the first LF (or the end of input, for a client that half-closes instead), at most
    /// <paramref name="maxBytes"/>; null when the peer closed without sending anything.
    /// </summary>
    /// <exception cref="ControlException">badRequest: the line is longer than allowed.</exception>
    internal static async Task<byte[]?> ReadLineAsync(Stream stream, int maxBytes, CancellationToken cancellationToken)
    {
        var buffer = new byte[maxBytes + 1];
        var length = 0;
        while (length < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0)
            {
                return length == 0 ? null : buffer[..length];
            }

            var newline = Array.IndexOf(buffer, (byte)'\n', length, read);
            length += read;
            if (newline >= 0)
            {
                return buffer[..newline];
            }
        }

        throw new ControlException(ControlErrors.BadRequest, $"the request line is longer than {maxBytes} bytes");
    }

    private async Task WriteAsync(NetworkStream stream, ControlResponse response)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(WriteTimeout);
        await stream.WriteAsync(response.ToLine(), timeout.Token);
        stream.Socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Stops accepting, removes the socket file, and lets running requests finish briefly.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();

        // .NET unlinks the path a Unix socket was bound to when it is disposed, so the CLI then says "not running".
        _listener?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        if (_connections is not null)
        {
            // Admin requests are cut short by _stop already; nothing more to abort.
            var running = await _connections.DrainAsync(DrainTimeout, TimeSpan.Zero);
            if (running > 0)
            {
                logger.StillRunningAtShutdown(running);
            }

            _connections.Dispose();
        }

        _stop.Dispose();
    }
}
