using System.Text.Json;
using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 18's world: a namespace whose fake MX is called <see cref="MxName"/> (the namespace's own /etc/hosts, which
/// `ip netns exec` mounts from /etc/netns/NAME), a client CA made by `smtp-interceptor client-ca create`, and a daemon
/// with ClientTls.Mode set. The CA is trusted only where a client is told to (a cafile), never in the host's store.
/// </summary>
public sealed class StartTlsWorld : IAsyncDisposable
{
    public const string MxName = "mx.example.net";

    private readonly string _netnsDirectory;

    private StartTlsWorld(Scenario scenario, DaemonProcess daemon, string caCertificate, string netnsDirectory)
    {
        Scenario = scenario;
        Daemon = daemon;
        CaCertificate = caCertificate;
        _netnsDirectory = netnsDirectory;
    }

    public Scenario Scenario { get; }

    public DaemonProcess Daemon { get; }

    /// <summary>The CA's certificate, readable by the test users (their test-local trust store).</summary>
    public string CaCertificate { get; }

    public string Describe() => "\n" + Daemon.Transcript() + "\n" + Scenario.RequireMx.Transcript();

    public static DaemonConfig Config(TestDirectory dir, string mode, int? commandLineTimeoutSeconds = null) => new()
    {
        Settings = new Dictionary<string, JsonNode?>
        {
            ["ClientTls.Mode"] = mode,
            ["ClientTls.CaCertificate"] = dir.PathOf("client-ca/ca.crt"),
            ["ClientTls.CaKey"] = dir.PathOf("client-ca/ca.key"),
            ["Smtp.CommandLineTimeoutSeconds"] = commandLineTimeoutSeconds ?? 60,
        },
    };

    public static async Task<StartTlsWorld> StartAsync(string mode = "Mint", int? commandLineTimeoutSeconds = null)
    {
        var scenario = await Scenario.StartAsync(startDaemon: false);
        var netns = Path.Combine("/etc/netns", scenario.Ns.Name);
        try
        {
            Directory.CreateDirectory(netns);
            await File.WriteAllTextAsync(Path.Combine(netns, "hosts"), $"127.0.0.1 localhost\n{NetworkNamespace.MxAddress4} {MxName}\n");
            File.SetUnixFileMode(Path.Combine(netns, "hosts"), (UnixFileMode)0b110_100_100);
            var config = Config(scenario.Dir, mode, commandLineTimeoutSeconds);
            var configPath = DaemonProcess.WriteConfig(scenario.Dir, config);
            var created = await CreateCaAsync(scenario.Ns, configPath);
            Assert.That(created.Succeeded, Is.True, created.Describe());
            var daemon = await DaemonProcess.StartAsync(scenario.Ns, scenario.Dir, config);
            return new StartTlsWorld(scenario, daemon, scenario.Dir.PathOf("client-ca/ca.crt"), netns);
        }
        catch
        {
            Directory.Delete(netns, recursive: true);
            await scenario.DisposeAsync();
            throw;
        }
    }

    /// <summary>`smtp-interceptor client-ca create` as root, as the package's postinst runs it.</summary>
    public static Task<ProcessResult> CreateCaAsync(NetworkNamespace ns, string configPath) =>
        ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, "client-ca", "create", "--config", configPath], TimeSpan.FromSeconds(60));

    /// <summary>Runs a client fixture as <paramref name="user"/> and parses the one JSON object it prints.</summary>
    public async Task<(JsonElement Result, ProcessResult Process)> RunJsonAsync(TestUser user, string program, IEnumerable<string> arguments)
    {
        var process = await Scenario.Ns.RunAsUserAsync(user, program, arguments, Clients.DefaultTimeout);
        var line = process.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith('{'));
        Assert.That(line, Is.Not.Null, process.Describe() + Describe());
        using var document = JsonDocument.Parse(line!);
        return (document.RootElement.Clone(), process);
    }

    /// <summary>smtplib with starttls(); <paramref name="trust"/> is "--cafile CA", "--system-trust" or "--no-verify".</summary>
    public Task<(JsonElement Result, ProcessResult Process)> SmtplibAsync(TestUser user, byte[] message, params string[] trust)
    {
        var dir = Scenario.Dir;
        var file = dir.Write("starttls-" + Guid.NewGuid().ToString("N")[..8] + ".eml", message);
        return RunJsonAsync(user, Requirements.Python, ["-I", dir.PathOf("starttls_smtplib.py"), "--host", MxName, "--from", "alice@client.test", "--to", "rcpt@example.test", "--file", file, .. trust]);
    }

    public async ValueTask DisposeAsync()
    {
        await Daemon.DisposeAsync();
        await Scenario.DisposeAsync();
        if (Directory.Exists(_netnsDirectory))
        {
            Directory.Delete(_netnsDirectory, recursive: true);
        }
    }
}
