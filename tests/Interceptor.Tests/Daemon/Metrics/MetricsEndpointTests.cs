using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Metrics;
using Interceptor.Store;
using Interceptor.Tests.Smtp.Metrics;
using Microsoft.Extensions.Logging;

namespace Interceptor.Tests.Daemon.Metrics;

/// <summary>
/// The exporter on a loopback port of its own: the names, labels and types the rules and the dashboard were written
/// against, every counter at 0 from the start, only /metrics, the connection cap, and a relay path that does not
/// allocate while it listens.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class MetricsEndpointTests
{
    private DaemonMetrics _metrics = null!;
    private MetricsEndpoint _endpoint = null!;
    private RecordingLogger _log = null!;
    private ILoggerFactory _loggers = null!;
    private HttpClient _http = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _metrics = new DaemonMetrics(perUser: true);
        _metrics.Store.Health = () => new StoreHealth("/x", 3, null, null, false);
        _metrics.Intercept.ActiveSessions = () => 2;
        _log = new RecordingLogger();
        _loggers = LoggerFactory.Create(b => b.AddProvider(new OneLoggerProvider(_log)));
        _endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, 0), _metrics.Sources, _loggers);
        await _endpoint.StartAsync(CancellationToken.None);
        _http = new HttpClient { BaseAddress = new Uri($"http://{_endpoint.BoundEndpoint}/"), Timeout = TimeSpan.FromSeconds(10) };
    }

    [TearDown]
    public async Task StopAsync()
    {
        _http.Dispose();
        await _endpoint.DisposeAsync();
        _metrics.Dispose();
        _loggers.Dispose();
    }

    [Test]
    public async Task Every_counter_is_served_at_zero_from_the_start_with_the_type_it_always_had()
    {
        var (types, samples, text) = await ScrapeAsync();
        Assert.Multiple(() =>
        {
            foreach (var (name, type) in new[]
            {
                ("smtpi_transactions_total", "counter"), ("smtpi_messages_relayed_total", "counter"), ("smtpi_recipients_relayed_total", "counter"),
                ("smtpi_bytes_relayed_total", "counter"), ("smtpi_upstream_replies_total", "counter"), ("smtpi_upstream_failures_total", "counter"),
                ("smtpi_messages_refused_total", "counter"), ("smtpi_suspensions_total", "counter"), ("smtpi_connections_refused_total", "counter"),
                ("smtpi_store_prunes_total", "counter"), ("smtpi_store_quota_history_lost_total", "counter"), ("smtpi_store_commits_total", "counter"),
                ("smtpi_store_healthy", "gauge"), ("smtpi_active_sessions", "gauge"),
            })
            {
                Assert.That(types.GetValueOrDefault(name), Is.EqualTo(type), $"{name}\n{text}");
            }

            Assert.That(samples["smtpi_transactions_total{outcome=\"delivered\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_transactions_total{outcome=\"unknown\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_messages_refused_total{reason=\"Suspended\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_suspensions_total{source=\"automatic\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_connections_refused_total{reason=\"owner_unknown\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_upstream_failures_total{stage=\"connect\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_upstream_replies_total{class=\"none\"}"], Is.Zero, text);
            Assert.That(samples["smtpi_store_quota_history_lost_total"], Is.Zero, text);
            Assert.That(samples["smtpi_store_healthy"], Is.EqualTo(1), text);
            Assert.That(samples["smtpi_store_commits_total"], Is.EqualTo(3), text);
            Assert.That(samples["smtpi_active_sessions"], Is.EqualTo(2), text);
            Assert.That(text, Does.Not.Contain("otel_scope").And.Not.Contain("target_info"), "no labels or series the rules never had");
        });
    }

    [Test]
    public async Task Events_show_in_the_next_scrape_with_their_labels_and_the_histogram_counts_every_lookup()
    {
        _metrics.Relay.Record(RelayMetricsTests.Transaction(TransactionOutcome.Delivered, "250 ok", recipients: 2, size: 512));
        _metrics.Policy.Refused(RefusalKind.MessagesPerHour, 1001, "al\"ice");
        _metrics.Attribution.ConnectionRefused("not_redirected");
        _metrics.Attribution.OwnerLookup(TimeSpan.FromMicroseconds(7));
        _metrics.Attribution.OwnerLookup(TimeSpan.FromMilliseconds(2));
        _metrics.Store.Pruned(quotaHistoryLost: true);

        var (types, samples, text) = await ScrapeAsync();
        Assert.Multiple(() =>
        {
            Assert.That(samples["smtpi_transactions_total{outcome=\"delivered\"}"], Is.EqualTo(1), text);
            Assert.That(samples["smtpi_messages_relayed_total"], Is.EqualTo(1), text);
            Assert.That(samples["smtpi_recipients_relayed_total"], Is.EqualTo(2), text);
            Assert.That(samples["smtpi_bytes_relayed_total"], Is.EqualTo(512), text);
            Assert.That(samples["smtpi_upstream_replies_total{class=\"2xx\"}"], Is.EqualTo(1), text);
            Assert.That(samples["smtpi_messages_refused_total{reason=\"MessagesPerHour\"}"], Is.EqualTo(1), text);
            Assert.That(samples.Where(s => s.Key.StartsWith("smtpi_user_refusals_total{", StringComparison.Ordinal)).Select(s => s.Key),
                Is.EquivalentTo(new[] { "smtpi_user_refusals_total{reason=\"MessagesPerHour\",user=\"al\\\"ice\"}" }), "the user's quote escaped\n" + text);
            Assert.That(samples.Keys, Has.Some.StartsWith("smtpi_user_transactions_total{").And.Contains("user=\"alice\""), text);
            Assert.That(samples["smtpi_connections_refused_total{reason=\"not_redirected\"}"], Is.EqualTo(1), text);
            Assert.That(samples["smtpi_store_prunes_total"], Is.EqualTo(1), text);
            Assert.That(samples["smtpi_store_quota_history_lost_total"], Is.EqualTo(1), text);
            Assert.That(types.GetValueOrDefault("smtpi_owner_lookup_seconds"), Is.EqualTo("histogram"), text);
            Assert.That(samples["smtpi_owner_lookup_seconds_count"], Is.EqualTo(2), text);
            Assert.That(samples["smtpi_owner_lookup_seconds_sum"], Is.EqualTo(0.002007).Within(1e-9), text);
            Assert.That(samples["smtpi_owner_lookup_seconds_bucket{le=\"+Inf\"}"], Is.EqualTo(2), text);
            Assert.That(Bucket(samples, 0.00001), Is.EqualTo(1), "7 µs falls in the 10 µs bucket\n" + text);
            Assert.That(Bucket(samples, 0.001), Is.EqualTo(1), "2 ms is above the 1 ms bucket\n" + text);
            Assert.That(Bucket(samples, 0.01), Is.EqualTo(2), text);
        });
    }

    [Test]
    public async Task Only_metrics_is_served_and_a_scrape_writes_no_log_line()
    {
        using var other = await _http.GetAsync(new Uri("other", UriKind.Relative));
        await ScrapeAsync();
        Assert.Multiple(() =>
        {
            Assert.That(other.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That(_log.Lines, Is.Empty, "the web host's per-request and start-up lines stay out of the journal");
        });
    }

    /// <summary>A connection kept busy (a request every second, within Kestrel's idle limits) still ends: it cannot keep its slot.</summary>
    [Test]
    public async Task A_connection_kept_busy_with_requests_is_closed_after_its_lifetime()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(_endpoint.BoundEndpoint!);
        var request = System.Text.Encoding.ASCII.GetBytes("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        var buffer = new byte[65536];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var closed = false;
        while (!closed && clock.Elapsed < MetricsEndpoint.ConnectionLifetime + TimeSpan.FromSeconds(5))
        {
            try
            {
                await socket.SendAsync(request, SocketFlags.None);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                closed = await socket.ReceiveAsync(buffer, SocketFlags.None, wait.Token) == 0;
            }
            catch (SocketException)
            {
                closed = true;
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        Assert.That(closed, Is.True, $"still open after {clock.Elapsed.TotalSeconds:0} s of requests");
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(MetricsEndpoint.ConnectionLifetime - TimeSpan.FromSeconds(1)), "served until its lifetime");
    }

    [Test]
    public async Task Connections_over_the_cap_are_closed_at_once_and_logged_and_the_endpoint_serves_once_they_go()
    {
        var held = new List<Socket>();
        try
        {
            for (var i = 0; i < DescriptorBudget.MetricsConnections; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(_endpoint.BoundEndpoint!);
                held.Add(socket);
            }

            using var over = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await over.ConnectAsync(_endpoint.BoundEndpoint!);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            var read = 0;
            try
            {
                read = await over.ReceiveAsync(new byte[16], SocketFlags.None, wait.Token);
            }
            catch (SocketException)
            {
                // a reset also closes it
            }

            Assert.Multiple(() =>
            {
                Assert.That(wait.IsCancellationRequested, Is.False, "the connection over the cap was left open");
                Assert.That(read, Is.Zero);
                Assert.That(_log.Lines, Has.Some.Contains("metrics: connection cap reached (8 requests at once)"));
            });
        }
        finally
        {
            held.ForEach(s => s.Dispose());
        }

        // The slots come back as the held connections end.
        var served = false;
        for (var attempt = 0; attempt < 50 && !served; attempt++)
        {
            try
            {
                using var response = await _http.GetAsync(new Uri("metrics", UriKind.Relative));
                served = response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                await Task.Delay(100);
            }
        }

        Assert.That(served, Is.True, "/metrics answers once the held connections are gone");
    }

    [Test]
    public async Task A_user_holds_at_most_her_share_of_the_connections_and_the_scraper_is_answered_meanwhile()
    {
        // Owners by the client's port, bound before connecting: alice's ports are hers, anything else is root's.
        var alices = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        await using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, 0), _metrics.Sources, _loggers)
        {
            OwnerOf = socket => alices.ContainsKey(((IPEndPoint)socket.RemoteEndPoint!).Port) ? 1001u : 0u,
        };
        await endpoint.StartAsync(CancellationToken.None);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{endpoint.BoundEndpoint}/"), Timeout = TimeSpan.FromSeconds(10) };
        var held = new List<Socket>();
        try
        {
            for (var i = 0; i < MetricsEndpoint.ConnectionsPerOwner + 1; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                alices[((IPEndPoint)socket.LocalEndPoint!).Port] = true;
                await socket.ConnectAsync(endpoint.BoundEndpoint!);
                held.Add(socket);
            }

            // The third is closed once the admission task gets to it: on a loaded machine that can take more than the
            // second the first two are given to show they stay open.
            var open = new List<bool>();
            foreach (var socket in held)
            {
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(socket == held[^1] ? 10 : 1));
                try
                {
                    open.Add(await socket.ReceiveAsync(new byte[16], SocketFlags.None, wait.Token) != 0);
                }
                catch (OperationCanceledException)
                {
                    open.Add(true);
                }
                catch (SocketException)
                {
                    open.Add(false);
                }
            }

            using var response = await http.GetAsync(new Uri("metrics", UriKind.Relative));
            Assert.Multiple(() =>
            {
                Assert.That(open, Is.EqualTo(new[] { true, true, false }), "her first two kept, the third closed at once");
                Assert.That(response.IsSuccessStatusCode, Is.True, "root's scrape is answered while she holds hers");
                Assert.That(_log.Lines, Has.Some.Contains("metrics: uid 1001 holds 2 connections already"));
            });
        }
        finally
        {
            held.ForEach(s => s.Dispose());
        }

        // Her slots come back as her connections end.
        var again = false;
        for (var attempt = 0; attempt < 50 && !again; attempt++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            alices[((IPEndPoint)socket.LocalEndPoint!).Port] = true;
            await socket.ConnectAsync(endpoint.BoundEndpoint!);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await socket.SendAsync("GET /metrics HTTP/1.0\r\n\r\n"u8.ToArray(), SocketFlags.None);
                again = await socket.ReceiveAsync(new byte[16], SocketFlags.None, wait.Token) > 0;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                // Closed at once while the endpoint still counted a held one (it closes with unread input: a reset).
                again = false;
            }

            if (!again)
            {
                await Task.Delay(100);
            }
        }

        Assert.That(again, Is.True, "she is served once her held connections are gone");
    }

    [Test]
    public async Task A_port_another_socket_holds_is_named_in_the_log_and_taken_once_it_is_free()
    {
        // Another process's listener on the port, as a customer's could be while the daemon restarts.
        var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        await using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, port), _metrics.Sources, _loggers);
        try
        {
            await endpoint.StartAsync(CancellationToken.None);
            Assert.Multiple(() =>
            {
                Assert.That(endpoint.BoundEndpoint, Is.Null, "not listening while the port is held");
                Assert.That(_log.Lines, Has.Some.Contains($"metrics: cannot listen on 127.0.0.1:{port}: the port is held by uid {Interceptor.Linux.UserDatabase.EffectiveUid}"));
                Assert.That(_log.Lines, Has.None.Contains("Hosting failed to start"), "one line of ours, not the web host's with a stack");
            });
        }
        finally
        {
            squatter.Stop();
        }

        var deadline = DateTime.UtcNow + MetricsEndpoint.BindRetryInterval * 3;
        while (endpoint.BoundEndpoint is null && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.That(endpoint.BoundEndpoint, Is.Not.Null, "listening once the port is free");
        using var http = new HttpClient { BaseAddress = new Uri($"http://{endpoint.BoundEndpoint}/"), Timeout = TimeSpan.FromSeconds(10) };
        using var response = await http.GetAsync(new Uri("metrics", UriKind.Relative));
        Assert.Multiple(() =>
        {
            Assert.That(response.IsSuccessStatusCode, Is.True);
            Assert.That(_log.Lines, Has.Some.Contains($"metrics: listening on 127.0.0.1:{port} at last"));
        });
    }

    [Test]
    public async Task Stopping_while_the_port_is_held_ends_the_retries()
    {
        var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        try
        {
            var endpoint = new MetricsEndpoint((IPEndPoint)squatter.LocalEndpoint, _metrics.Sources, _loggers);
            await endpoint.StartAsync(CancellationToken.None);
            var stop = endpoint.StopAsync(CancellationToken.None);
            Assert.That(await Task.WhenAny(stop, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(stop), "the stop does not wait for the port");
            await stop;
            squatter.Stop();
            await Task.Delay(MetricsEndpoint.BindRetryInterval + TimeSpan.FromSeconds(1));
            Assert.That(endpoint.BoundEndpoint, Is.Null, "no retry after the stop");
        }
        finally
        {
            squatter.Stop();
        }
    }

    [Test]
    public async Task Recording_a_transaction_allocates_nothing_while_the_exporter_listens()
    {
        var delivered = RelayMetricsTests.Transaction(TransactionOutcome.Delivered, "250 ok") with { User = "alice" };
        using var relay = new Interceptor.Smtp.Metrics.RelayMetrics(perUser: false);
        await using var endpoint = new MetricsEndpoint(new IPEndPoint(IPAddress.Loopback, 0), [relay], _loggers);
        await endpoint.StartAsync(CancellationToken.None);
        relay.Record(delivered);

        // A cost per measurement shows in every round. One round of five may carry a one-off cost that is not the
        // recording's (the full suite once saw 3,736 bytes in one round, never reproduced alone), so the best round
        // must be zero and every round is printed.
        var rounds = new List<long>();
        for (var round = 0; round < 5 && !rounds.Contains(0); round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                relay.Record(delivered);
            }

            rounds.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.That(rounds.Min(), Is.Zero, $"bytes allocated per round of 1,000 recordings: {string.Join(", ", rounds)}");
    }

    private static double Bucket(IReadOnlyDictionary<string, double> samples, double le) =>
        samples.Single(s => s.Key.StartsWith("smtpi_owner_lookup_seconds_bucket{le=\"", StringComparison.Ordinal)
            && s.Key.Split('"')[1] is var bound && bound != "+Inf" && double.Parse(bound, CultureInfo.InvariantCulture) == le).Value;

    private async Task<(Dictionary<string, string> Types, Dictionary<string, double> Samples, string Text)> ScrapeAsync()
    {
        var text = await _http.GetStringAsync(new Uri("metrics", UriKind.Relative));
        await TestContext.Out.WriteLineAsync(text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var types = lines.Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' '))
            .ToDictionary(p => p[2], p => p[3], StringComparer.Ordinal);
        // The exporter writes an empty label set as "{}" (the same series to Prometheus): keyed here by the bare name.
        var samples = lines.Where(l => !l.StartsWith('#')).Select(l => (Series: l[..l.LastIndexOf(' ')].Replace("{}", "", StringComparison.Ordinal), Value: l[(l.LastIndexOf(' ') + 1)..]))
            .ToDictionary(s => s.Series, s => double.Parse(s.Value, CultureInfo.InvariantCulture), StringComparer.Ordinal);
        return (types, samples, text);
    }

    internal sealed class OneLoggerProvider(ILogger logger) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => logger;

        public void Dispose()
        {
        }
    }
}
