using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Interceptor.Daemon.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// Kestrel's transport for the metrics endpoint, accepting with the daemon's own <see cref="AcceptLoop"/>: Kestrel's
/// socket transport retries a failed accept at once, so at EMFILE it would spin a core until descriptors come back;
/// this loop backs off and logs once per 10 s, as the intercept and control listeners do. A connection is admitted
/// (<c>admit</c>: a slot under the endpoint's caps, given back when disposed) before Kestrel sees it, and one that is not
/// is closed there and then, so a flood of them holds no descriptor. The slot goes with the connection, under
/// <see cref="SlotKey"/> in its items. Admitting (the owner's lookup, which may read /proc/net/tcp or /etc/subuid) runs
/// on a task of its own, one connection at a time, not on the socket thread that completed the accept and runs sessions'
/// steps: at most <c>Waiting</c> connections wait for it, more are closed at once. Kestrel's socket connection (pipes,
/// buffers) is kept: only the accepting is ours.
/// </summary>
internal sealed class SharedAcceptLoopTransport(Func<Socket, IDisposable?> admit, ILogger logger) : IConnectionListenerFactory
{
    /// <summary>The key of a connection's slot in <see cref="ConnectionContext.Items"/>.</summary>
    public static readonly object SlotKey = new();

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IConnectionListener>(new Listener((IPEndPoint)endpoint, admit, logger));

    private sealed class Listener : IConnectionListener
    {
        // Sockets accepted but not yet admitted, and admitted but not yet taken by Kestrel; both are quick, so a full
        // queue means a flood, and a socket that does not fit is closed (the connection caps would close it anyway).
        private const int Waiting = 16;
        private readonly TcpListener _socket;
        private readonly Channel<Socket> _admitting = Channel.CreateBounded<Socket>(Waiting);
        private readonly Channel<(Socket Socket, IDisposable Slot)> _accepted = Channel.CreateBounded<(Socket, IDisposable)>(Waiting);
        private readonly SocketConnectionContextFactory _connections;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private readonly Task _admission;
        private readonly Func<Socket, IDisposable?> _admit;

        public Listener(IPEndPoint endpoint, Func<Socket, IDisposable?> admit, ILogger logger)
        {
            _admit = admit;
            _socket = new TcpListener(endpoint);
            try
            {
                _socket.Start();
            }
            catch
            {
                // A port held by another socket is tried again every few seconds: no descriptor may stay behind.
                _socket.Stop();
                throw;
            }

            EndPoint = _socket.LocalEndpoint;
            _connections = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions(), logger);
            var loop = new AcceptLoop($"metrics {EndPoint}", _socket.AcceptSocketAsync, Hand, logger);
            _loop = Task.Run(() => loop.RunAsync(_stop.Token));
            _admission = Task.Run(() => AdmitAsync(_stop.Token));
        }

        public EndPoint EndPoint { get; }

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                var (socket, slot) = await _accepted.Reader.ReadAsync(cancellationToken);
                try
                {
                    var connection = _connections.Create(socket);
                    connection.Items[SlotKey] = slot;
                    return connection;
                }
                catch
                {
                    socket.Dispose();
                    slot.Dispose();
                    throw;
                }
            }
            catch (Exception e) when (e is ChannelClosedException or OperationCanceledException)
            {
                return null;
            }
        }

        public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            if (!_stop.IsCancellationRequested)
            {
                await _stop.CancelAsync();
                _socket.Stop();
                await _loop;
                await _admission;
                _admitting.Writer.TryComplete();
                while (_admitting.Reader.TryRead(out var waiting))
                {
                    waiting.Dispose();
                }

                _accepted.Writer.TryComplete();
                while (_accepted.Reader.TryRead(out var left))
                {
                    left.Socket.Dispose();
                    left.Slot.Dispose();
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await UnbindAsync();
            _connections.Dispose();
            _stop.Dispose();
        }

        private void Hand(Socket accepted)
        {
            if (!_admitting.Writer.TryWrite(accepted))
            {
                accepted.Dispose();
            }
        }

        private async Task AdmitAsync(CancellationToken stop)
        {
            try
            {
                await foreach (var accepted in _admitting.Reader.ReadAllAsync(stop))
                {
                    Admit(accepted);
                }
            }
            catch (OperationCanceledException)
            {
                // Unbound: what still waits is closed there.
            }
        }

        private void Admit(Socket accepted)
        {
            if (_admit(accepted) is not { } slot)
            {
                accepted.Dispose();
            }
            else if (!_accepted.Writer.TryWrite((accepted, slot)))
            {
                accepted.Dispose();
                slot.Dispose();
            }
        }
    }
}
