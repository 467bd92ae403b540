using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A real DNS server (dnsmasq, package dnsmasq-base) answering for one blocklist zone on a free loopback port: given
/// names get an A record, every other name in the zone NXDOMAIN, and nothing is forwarded anywhere. Stopped on dispose.
/// </summary>
public sealed class LocalDnsbl : IAsyncDisposable
{
    private readonly BackgroundProcess _process;

    private LocalDnsbl(BackgroundProcess process, IPEndPoint endPoint)
    {
        _process = process;
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }

    public string Transcript() => _process.Transcript();

    /// <param name="zone">e.g. "zen.test"</param>
    /// <param name="records">query name (without the zone) → the A record it answers, e.g. "10.2.0.192" → "127.0.0.2".</param>
    /// <param name="txtRecords">full name → TXT text (split into strings of 250 at most here; no commas, which separate them), e.g. DKIM keys (issue 17).</param>
    /// <param name="ns">Run inside this network namespace (where the daemon under test looks it up); null: here.</param>
    /// <param name="forward">domain → "address#port" it is forwarded to (dnsmasq --server), e.g. a server that never answers.</param>
    public static async Task<LocalDnsbl> StartAsync(
        string zone, IReadOnlyDictionary<string, string> records, IReadOnlyDictionary<string, string>? txtRecords = null, NetworkNamespace? ns = null,
        IReadOnlyDictionary<string, string>? forward = null)
    {
        var dnsmasq = Requirements.Which("dnsmasq") ?? throw new InvalidOperationException("dnsmasq not found (package dnsmasq-base)");
        var port = FreeUdpPort();
        List<string> arguments =
        [
            "--keep-in-foreground", "--log-queries", "--log-facility=-", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--pid-file=", "--bind-interfaces", "--listen-address=127.0.0.1", "--port=" + port.ToString(CultureInfo.InvariantCulture),
            // Authoritative-style: names of the zone without a record are NXDOMAIN, never forwarded.
            $"--local=/{zone}/",
        ];
        arguments.AddRange(records.Select(r => $"--host-record={r.Key}.{zone},{r.Value}"));
        arguments.AddRange((txtRecords ?? new Dictionary<string, string>()).Select(r => $"--txt-record={r.Key}," + string.Join(',', r.Value.Chunk(250).Select(c => new string(c)))));
        arguments.AddRange((forward ?? new Dictionary<string, string>()).Select(f => $"--server=/{f.Key}/{f.Value}"));
        var process = ns is null ? BackgroundProcess.Start("dnsmasq", dnsmasq, arguments) : ns.StartBackground("dnsmasq", dnsmasq, arguments);
        var server = new LocalDnsbl(process, new IPEndPoint(IPAddress.Loopback, port));
        if (await process.WaitForLineAsync(l => l.Contains("started", StringComparison.Ordinal), TimeSpan.FromSeconds(10)) is null)
        {
            var transcript = process.Transcript();
            await server.DisposeAsync();
            throw new InvalidOperationException("dnsmasq did not start:\n" + transcript);
        }

        return server;
    }

    private static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
