using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Record;

/// <summary>
/// A minimal HTTP/1.0 endpoint on a loopback address serving GET /metrics for Prometheus. Deliberately tiny:
/// one request per connection, bounded request size and time, nothing but the metrics page.
/// </summary>
public sealed class MetricsServer(IPEndPoint endpoint, MetricsRegistry metrics, Func<int> activeSessions, ILogger logger) : IAsyncDisposable
{
    private readonly TcpListener _listener = new(endpoint);
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public void Start()
    {
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                var stream = client.GetStream();
                var buffer = new byte[4096];
                var length = 0;
                while (length < buffer.Length)
                {
                    var read = await stream.ReadAsync(buffer.AsMemory(length), timeout.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    length += read;
                    if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0)
                    {
                        break;
                    }
                }

                var request = Encoding.ASCII.GetString(buffer, 0, length);
                var (status, body) = request.StartsWith("GET /metrics ", StringComparison.Ordinal)
                    ? ("200 OK", metrics.Render(activeSessions()))
                    : ("404 Not Found", "only /metrics is served here\n");
                var bytes = Encoding.UTF8.GetBytes(body);
                var head = $"HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token);
                await stream.WriteAsync(bytes, timeout.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
            {
                logger.LogDebug("metrics request failed: {Reason}", e.Message);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        if (_loop is not null)
        {
            await _loop;
        }

        _stop.Dispose();
    }
}
