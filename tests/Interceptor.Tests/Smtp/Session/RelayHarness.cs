using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Smtp.Session;
using Interceptor.Smtp.Tls;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>Collects the transaction events the session records.</summary>
internal sealed class RecordingRecorder : ITransactionRecorder
{
    private readonly ConcurrentQueue<TransactionEvent> _events = new();

    public IReadOnlyList<TransactionEvent> Events => [.. _events];

    /// <summary>Runs inside Record, before the event is collected: a test can hold the session there.</summary>
    public Action<TransactionEvent>? OnRecord { get; set; }

    public void Record(TransactionEvent transaction)
    {
        OnRecord?.Invoke(transaction);
        _events.Enqueue(transaction);
    }
}

/// <summary>
/// One <see cref="InboundSession"/> over a real loopback connection: the test holds the client side,
/// the session the server side, relaying to the given upstream endpoint (as if it were the original destination).
/// </summary>
internal sealed class RelayHarness : IAsyncDisposable
{
    public const uint Uid = 1001;
    public const string User = "alice";
    public const string HeloName = "relay.test";

    /// <summary>
    /// Bounds well above any wait a loaded machine causes (with 2 s, a session's DATA read timed out on a loaded host
    /// although the client had sent the awaited bytes 300 ms into the wait): a test about something else must not fail
    /// by a timeout. Built once: the default HeloName asks DNS.
    /// </summary>
    public static readonly InterceptorOptions Options = new()
    {
        Relay = new RelayOptions
        {
            HeloName = HeloName,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            ReplyTimeout = TimeSpan.FromSeconds(10),
            DataReplyTimeout = TimeSpan.FromSeconds(10),
        },
        Smtp = new SmtpOptions { IdleTimeout = TimeSpan.FromSeconds(10) },
    };

    /// <summary>Short bounds, for the tests of what a timeout does: they finish quickly.</summary>
    public static readonly InterceptorOptions ShortTimeouts = Options with
    {
        Relay = Options.Relay with
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            ReplyTimeout = TimeSpan.FromSeconds(2),
            DataReplyTimeout = TimeSpan.FromSeconds(2),
        },
        Smtp = Options.Smtp with { IdleTimeout = TimeSpan.FromSeconds(2) },
    };

    private readonly CancellationTokenSource _shutdown = new();

    private RelayHarness(SmtpTestClient client, IPEndPoint clientEndPoint, IPEndPoint upstream)
    {
        Client = client;
        ClientEndPoint = clientEndPoint;
        Upstream = upstream;
    }

    public SmtpTestClient Client { get; }

    public IPEndPoint ClientEndPoint { get; }

    public IPEndPoint Upstream { get; }

    public RecordingRecorder Recorder { get; } = new();

    /// <summary>The daemon's policy over the in-memory store, with the options' limits.</summary>
    public PolicyFixture Policy { get; private set; } = null!;

    /// <summary>RunAsync followed by the disposal the daemon does; completes when the server side is closed.</summary>
    public Task Session { get; private set; } = Task.CompletedTask;

    public static InterceptorOptions WithLimits(long? messageSizeBytes = null, int? recipientsPerMessage = null) => Options with
    {
        Limits = new LimitsOptions
        {
            Default = new QuotaLimits
            {
                MessageSizeBytes = messageSizeBytes ?? QuotaLimits.Defaults.MessageSizeBytes,
                RecipientsPerMessage = recipientsPerMessage ?? QuotaLimits.Defaults.RecipientsPerMessage,
            },
        },
    };

    /// <param name="upstreams">Where the session's upstream comes from; when null, a new connection ended with QUIT (no reuse).</param>
    /// <param name="policy">The session's policy; the daemon's <see cref="Core.Policy.MailPolicy"/> over <see cref="Policy"/>'s store when null.</param>
    /// <param name="clientTls">STARTTLS towards the client (ClientTls.Mode Mint); null: not offered.</param>
    public static async Task<RelayHarness> StartAsync(IPEndPoint upstream, InterceptorOptions? options = null, IUpstreamSource? upstreams = null, IMailPolicy? policy = null, ClientTlsServer? clientTls = null)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var clientSocket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await clientSocket.ConnectAsync(listener.LocalEndpoint);
        var serverSocket = await listener.AcceptSocketAsync();
        serverSocket.NoDelay = true;
        var clientEndPoint = (IPEndPoint)clientSocket.LocalEndPoint!;
        var harness = new RelayHarness(new SmtpTestClient(clientSocket), clientEndPoint, upstream);
        options ??= Options;
        harness.Policy = new PolicyFixture(options.Limits);
        harness.Session = harness.RunAsync(serverSocket, options, upstreams, policy ?? harness.Policy.Policy, clientTls);
        return harness;
    }

    private async Task RunAsync(Socket serverSocket, InterceptorOptions options, IUpstreamSource? upstreams, IMailPolicy policy, ClientTlsServer? clientTls)
    {
        await Task.Yield();
        await using var ownCache = upstreams is null ? new UpstreamConnectionCache(UpstreamSettings.From(options.Relay) with { Reuse = UpstreamReuse.Off }) : null;

        // As the daemon does: the stream owns the socket and outlives the session.
        await using var stream = new NetworkStream(serverSocket, ownsSocket: true);
        var origin = new ConnectionOrigin(Uid, User, ClientEndPoint, Upstream);
        await using var session = new InboundSession(stream, origin, options, Recorder, NullLogger.Instance, policy, upstreams ?? ownCache!) { ClientTls = clientTls };
        await session.RunAsync(_shutdown.Token);
    }

    /// <summary>The trace header the upstream must see first, for a given event id.</summary>
    public static string TraceHeader(string id) => $"X-Interceptor-Origin: uid={Uid} user={User}; host={HeloName}; id={id}\r\n";

    /// <summary>Splits the trace header off a message as the upstream received it: (header line, the rest).</summary>
    public static (string Header, byte[] Body) SplitTraceHeader(byte[] message)
    {
        var end = Array.IndexOf(message, (byte)'\n');
        return end < 0
            ? (Encoding.ASCII.GetString(message), [])
            : (Encoding.ASCII.GetString(message, 0, end + 1), message[(end + 1)..]);
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await _shutdown.CancelAsync();
        await Session.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _shutdown.Dispose();

        // RunAsync promises never to throw for anything a client or upstream does; hold it to that.
        if (Session.IsFaulted)
        {
            await Session;
        }
    }
}
