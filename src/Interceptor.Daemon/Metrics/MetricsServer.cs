using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Options;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Record;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Metrics;

/// <summary>
/// A minimal HTTP/1.0 endpoint on a loopback address serving GET /metrics for Prometheus. Deliberately tiny:
/// one request per connection, bounded request size and time, nothing but the metrics page, and at most
/// <see cref="DescriptorBudget.MetricsConnections"/> connections at once: one more is closed at once (a local user
/// holding connections must not take the daemon's descriptors; a scraper asks once every few seconds).
/// </summary>
public sealed class MetricsServer(IPEndPoint endpoint, MetricsRegistry metrics, Func<int> activeSessions, ILogger logger) : IAsyncDisposable
{
    private readonly TcpListener _listener = new(endpoint);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConnectionSlots _slots = new(DescriptorBudget.MetricsConnections);
    private readonly LogThrottle _capReport = new(AcceptLoop.ReportInterval, TimeProvider.System);
    private Task? _loop;

    public void Start()
    {
        _listener.Start();
        var loop = new AcceptLoop($"metrics {endpoint}", _listener.AcceptSocketAsync, Dispatch, logger);
        _loop = Task.Run(() => loop.RunAsync(_stop.Token));
    }

    private void Dispatch(Socket client)
    {
        if (_slots.TryTake())
        {
            _ = ServeAsync(client);
            return;
        }

        if (_capReport.TryReport(out var count, out var span))
        {
            logger.ConnectionCapReached(_slots.Capacity, count, span.TotalSeconds, AcceptLoop.ReportInterval.TotalSeconds);
        }

        client.Dispose();
    }

    private async Task ServeAsync(Socket client)
    {
        await Task.Yield();
        using (client)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await using var stream = new NetworkStream(client, ownsSocket: false);
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
                logger.RequestFailed(e.Message);
            }
            finally
            {
                _slots.Return();
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
