using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>What a bare TCP connect saw: refused by the kernel, or connected with the first reply line.</summary>
public sealed record ProbeResult(string Outcome, string? Greeting, string? Error, ProcessResult Process)
{
    /// <summary>Python raised ConnectionRefusedError: a TCP reset, as the kernel's reject gives.</summary>
    public bool Refused => Outcome == "refused";

    public bool Connected => Outcome == "connected";

    public override string ToString() => $"{Outcome} greeting='{Greeting}' error='{Error}'\n{Process.Describe()}";
}

/// <summary>
/// A plain `socket.create_connection` as a given user inside the namespace (what a customer's script does
/// first), reporting whether the kernel refused it and, if not, the server's first line.
/// </summary>
public static class TcpProbe
{
    /// <summary>The probe itself: `python3 -I -c Script HOST PORT` prints one JSON line (run it as whoever must connect).</summary>
    public const string Script = """
        import json, socket, sys
        host, port = sys.argv[1], int(sys.argv[2])
        try:
            c = socket.create_connection((host, port), 5)
        except ConnectionRefusedError as e:
            print(json.dumps({"outcome": "refused", "error": type(e).__name__}))
            sys.exit(0)
        except OSError as e:
            print(json.dumps({"outcome": "error", "error": "%s: %s" % (type(e).__name__, e)}))
            sys.exit(0)
        c.settimeout(10)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = c.recv(1024)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"220"):
                c.sendall(b"QUIT\r\n")
                c.recv(1024)
        except OSError as e:
            print(json.dumps({"outcome": "connected", "greeting": data.decode("latin-1").split("\r\n")[0], "error": str(e)}))
            sys.exit(0)
        c.close()
        print(json.dumps({"outcome": "connected", "greeting": data.decode("latin-1").split("\r\n")[0]}))
        """;

    public static async Task<ProbeResult> ConnectAsync(NetworkNamespace ns, TestUser? user, string host, int port)
    {
        var process = await ns.RunAsUserAsync(
            user, Requirements.Python, ["-I", "-c", Script, host, port.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(30));
        return Parse(process);
    }

    /// <summary>The result line the <see cref="Script"/> printed.</summary>
    public static ProbeResult Parse(ProcessResult process)
    {
        ArgumentNullException.ThrowIfNull(process);
        var line = process.Stdout.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, "the TCP probe printed no result:\n" + process.Describe());
        using var document = JsonDocument.Parse(line!);
        var root = document.RootElement;
        return new ProbeResult(
            root.GetProperty("outcome").GetString() ?? "",
            root.TryGetProperty("greeting", out var greeting) ? greeting.GetString() : null,
            root.TryGetProperty("error", out var error) ? error.GetString() : null,
            process);
    }
}
