using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Debian's real SpamAssassin daemon inside a test's namespace, on its loopback: <c>spamd -u nobody -x -L -i
/// 127.0.0.1:PORT</c> (no per-user config, local tests only: no DNS). Started per test, ready once it answers PING, stopped
/// with the scenario (or earlier, to test a scanner that went away).
/// </summary>
public sealed class Spamd : IAsyncDisposable
{
    public const int Port = 7830;

    private readonly BackgroundProcess _process;

    private Spamd(BackgroundProcess process) => _process = process;

    public static string Endpoint => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public static async Task<Spamd> StartAsync(NetworkNamespace ns, TestDirectory dir)
    {
        var spamd = Requirements.Which("spamd");
        if (spamd is null)
        {
            Assert.Fail("spamd is not installed (packages spamassassin and spamd; scripts/lib/ensure-deps.sh installs them)");
        }

        var process = ns.StartBackground("spamd", spamd!, ["-u", "nobody", "-x", "-L", "-i", Endpoint, "-s", "stderr", "--pidfile", Path.Combine(dir.Path, "spamd.pid")]);
        var started = new Spamd(process);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            var pong = await ns.RunAsync(Requirements.Python, ["-I", "-c", PingScript]);
            if (pong.Stdout.Contains("PONG", StringComparison.Ordinal))
            {
                return started;
            }

            await Task.Delay(500);
        }

        var transcript = process.Transcript();
        await started.DisposeAsync();
        Assert.Fail("spamd did not answer PING:\n" + transcript);
        return started;
    }

    /// <summary>spamc's PING, from inside the namespace.</summary>
    private static string PingScript =>
        "import socket,sys\n" +
        "try:\n" +
        $"  s=socket.create_connection(('127.0.0.1',{Port}),timeout=5); s.sendall(b'PING SPAMC/1.5\\r\\n\\r\\n'); print(s.recv(100).decode())\n" +
        "except OSError as e:\n  print(e)\n";

    public string Transcript() => _process.Transcript();

    public async Task StopAsync()
    {
        await _process.SignalAsync("TERM");
        await _process.WaitForExitAsync(TimeSpan.FromSeconds(20));
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
