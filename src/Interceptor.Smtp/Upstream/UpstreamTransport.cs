using System.Net;
using System.Net.Sockets;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// One open byte channel to an upstream, below SMTP: what <see cref="UpstreamConnection"/> reads its replies from and
/// writes its commands to. The seam that lets unit tests replay recorded dialogues without a socket.
/// </summary>
public interface IUpstreamTransport : IAsyncDisposable
{
    /// <summary>The duplex byte stream; STARTTLS wraps it, and disposing the wrapper disposes it.</summary>
    Stream Stream { get; }

    /// <summary>
    /// True when the peer has sent something or closed while we sent nothing (an idle upstream that gives up says 421
    /// and closes). Must not block: one poll, no round trip.
    /// </summary>
    bool HasUnaskedInput();

    /// <summary>Drops the channel at once (a TCP reset): the upstream then discards an unfinished DATA.</summary>
    void Abort();
}

/// <summary>Opens transports to an upstream endpoint; connect failures are <see cref="UpstreamUnavailableException"/>.</summary>
public interface IUpstreamConnector
{
    Task<IUpstreamTransport> ConnectAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>The production connector: a TCP socket (no Nagle: SMTP is lock-step, each command waits for its reply).</summary>
public sealed class SocketUpstreamConnector : IUpstreamConnector
{
    public static readonly SocketUpstreamConnector Instance = new();

    public async Task<IUpstreamTransport> ConnectAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(endpoint, limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new UpstreamUnavailableException($"connect to {endpoint} timed out after {timeout.TotalSeconds:0} s");
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new UpstreamUnavailableException($"connect to {endpoint} failed: {Describe(e.SocketErrorCode)}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new SocketTransport(socket);
    }

    private static string Describe(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => "connection refused",
        SocketError.NetworkUnreachable => "network unreachable",
        SocketError.HostUnreachable => "host unreachable",
        SocketError.TimedOut => "timed out",
        _ => error.ToString(),
    };

    private sealed class SocketTransport(Socket socket) : IUpstreamTransport
    {
        public Stream Stream { get; } = new NetworkStream(socket, ownsSocket: false);

        public bool HasUnaskedInput()
        {
            try
            {
                return socket.Poll(0, SelectMode.SelectRead);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return true;
            }
        }

        public void Abort()
        {
            try
            {
                socket.LingerState = new LingerOption(true, 0);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Already closed: aborting twice is fine.
            }

            socket.Dispose();
        }

        public async ValueTask DisposeAsync()
        {
            await Stream.DisposeAsync();
            socket.Dispose();
        }
    }
}
