using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>What Fixtures/port_squatter.py reported when it stopped.</summary>
public sealed record SquatterSummary(int Attempts, IReadOnlyDictionary<string, int> Results, IReadOnlyList<string> Bound, IReadOnlyList<string> Accepted, string Raw)
{
    public int Count(string result) => Results.GetValueOrDefault(result);

    public override string ToString() => Raw;
}

/// <summary>
/// A local user trying to take the daemon's listener port (Fixtures/port_squatter.py), run with setpriv as that user
/// inside the namespace: it loops bind()+listen() on 127.0.0.1 and [::1], or (hold) binds once and keeps the port.
/// </summary>
public sealed class PortSquatter : IAsyncDisposable
{
    private readonly BackgroundProcess _process;

    private PortSquatter(BackgroundProcess process) => _process = process;

    public static async Task<PortSquatter> StartAsync(NetworkNamespace ns, TestDirectory dir, TestUser user, int port, bool hold = false)
    {
        List<string> arguments =
        [
            "--reuid=" + user.Uid.ToString(CultureInfo.InvariantCulture),
            "--regid=" + user.Gid.ToString(CultureInfo.InvariantCulture),
            "--clear-groups",
            Requirements.Python, "-I", dir.PathOf("port_squatter.py"), "--port", port.ToString(CultureInfo.InvariantCulture),
        ];
        if (hold)
        {
            arguments.Add("--hold");
        }

        var process = ns.StartBackground("squatter-" + user.Name, "setpriv", arguments);
        var expected = hold ? "\"holding\"" : "\"started\"";
        var line = await process.WaitForLineAsync(l => l.Contains(expected, StringComparison.Ordinal) || l.Contains("\"failed\"", StringComparison.Ordinal), TimeSpan.FromSeconds(20));
        var squatter = new PortSquatter(process);
        if (line is null || !line.Text.Contains(expected, StringComparison.Ordinal))
        {
            var transcript = process.Transcript();
            await squatter.DisposeAsync();
            Assert.Fail($"the squatter ({user}) did not get going on port {port}:\n{transcript}");
        }

        return squatter;
    }

    /// <summary>Connections that reached the squatter's sockets so far (one "accepted" line each).</summary>
    public int AcceptedSoFar => _process.Lines.Count(l => l.Text.Contains("\"accepted\"", StringComparison.Ordinal));

    /// <summary>SIGTERM, then the summary line it prints on the way out.</summary>
    public async Task<SquatterSummary> StopAsync()
    {
        await _process.SignalAsync("TERM");
        Assert.That(await _process.WaitForExitAsync(TimeSpan.FromSeconds(20)), Is.True, "the squatter did not stop:\n" + _process.Transcript());
        var line = _process.Lines.Select(l => l.Text).LastOrDefault(l => l.Contains("\"summary\"", StringComparison.Ordinal));
        Assert.That(line, Is.Not.Null, "the squatter printed no summary:\n" + _process.Transcript());
        using var document = JsonDocument.Parse(line!);
        var root = document.RootElement;
        return new SquatterSummary(
            root.GetProperty("attempts").GetInt32(),
            root.GetProperty("results").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()),
            [.. root.GetProperty("bound").EnumerateArray().Select(b => b.GetRawText())],
            [.. root.GetProperty("accepted").EnumerateArray().Select(a => a.GetRawText())],
            line!);
    }

    public string Transcript() => _process.Transcript();

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
