using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>One JSON log line of the daemon (Microsoft.Extensions.Logging JSON console formatter).</summary>
public sealed record DaemonLogLine(string LogLevel, string Category, string Message, JsonElement State, string Raw)
{
    public string? StateString(string key) =>
        State.ValueKind == JsonValueKind.Object && State.TryGetProperty(key, out var value)
            ? value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText()
            : null;

    /// <summary>A field of the session scope the line was written in (Scopes: SessionId, Uid, User), or null outside a session.</summary>
    public string? ScopeString(string key)
    {
        using var document = JsonDocument.Parse(Raw);
        if (!document.RootElement.TryGetProperty("Scopes", out var scopes) || scopes.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        foreach (var scope in scopes.EnumerateArray())
        {
            if (scope.ValueKind == JsonValueKind.Object && scope.TryGetProperty(key, out var value))
            {
                return value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText();
            }
        }

        return null;
    }

    public static DaemonLogLine? TryParse(string line)
    {
        if (!line.StartsWith('{'))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            return new DaemonLogLine(
                root.TryGetProperty("LogLevel", out var level) ? level.GetString() ?? "" : "",
                root.TryGetProperty("Category", out var category) ? category.GetString() ?? "" : "",
                root.TryGetProperty("Message", out var message) ? message.GetString() ?? "" : "",
                root.TryGetProperty("State", out var state) ? state.Clone() : default,
                line);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>A "transaction" log line: what the daemon accounted for one mail transaction.</summary>
public sealed record TransactionLog(DaemonLogLine Line)
{
    public string? Id => Line.StateString("Id");

    /// <summary>The uid, whether the formatter wrote it as a number or as a string.</summary>
    public uint? Uid => uint.TryParse(Line.StateString("Uid"), NumberStyles.None, CultureInfo.InvariantCulture, out var uid) ? uid : null;

    public string? User => Line.StateString("User");
    public string? Sender => Line.StateString("Sender");
    public string? Recipients => Line.StateString("Recipients");
    public string? OriginalDestination => Line.StateString("OriginalDestination");
    public string? Upstream => Line.StateString("Upstream");
    public string? Reply => Line.StateString("Reply");

    public override string ToString() => Line.Raw;
}

/// <summary>
/// The real daemon, started with `ip netns exec NS dotnet smtp-interceptor.dll run --config FILE`
/// so its nft table lands in the test namespace only. Its stdout is kept for assertions and for
/// failure messages.
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(45);
    private readonly BackgroundProcess _process;

    private DaemonProcess(BackgroundProcess process, string configPath)
    {
        _process = process;
        ConfigPath = configPath;
    }

    public string ConfigPath { get; }
    public BackgroundProcess Process => _process;

    /// <summary>The daemon assembly the build copied next to the test assembly (the test project references the Daemon project).</summary>
    public static string AssemblyPath
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "smtp-interceptor.dll");
            foreach (var required in new[] { path, Path.ChangeExtension(path, ".runtimeconfig.json"), Path.ChangeExtension(path, ".deps.json") })
            {
                if (!File.Exists(required))
                {
                    Assert.Fail($"{required} is missing: the Daemon project's output must be copied next to the test assembly");
                }
            }

            return path;
        }
    }

    /// <summary>The dotnet host that runs the tests (the SDK sets DOTNET_HOST_PATH), else dotnet on PATH.</summary>
    public static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Requirements.Require("dotnet");

    public static string WriteConfig(TestDirectory dir, DaemonConfig config) =>
        dir.Write("daemon-config.json", config.ToJson(dir.Subdirectory("daemon")));

    /// <summary>Starts the daemon and waits for its "ready" line; fails the test with its output otherwise.</summary>
    public static async Task<DaemonProcess> StartAsync(NetworkNamespace ns, TestDirectory dir, DaemonConfig? config = null)
    {
        var configPath = WriteConfig(dir, config ?? new DaemonConfig());
        // No inherited SMTPI_* variable may silently override the test's config.
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal))
            .ToDictionary(k => k, _ => (string?)null);
        IReadOnlyList<string> command = [DotnetHost, AssemblyPath, "run", "--config", configPath];
        if (config?.DescriptorLimit is { } limit)
        {
            // prlimit sets the limit and execs the daemon in the same process, so the limit is the daemon's own.
            command = [Requirements.Require("prlimit"), $"--nofile={limit}:{limit}", .. command];
        }

        var process = ns.StartBackground("daemon", command[0], command.Skip(1), environment);
        var daemon = new DaemonProcess(process, configPath);
        var ready = await process.WaitForLineAsync(l => DaemonLogLine.TryParse(l)?.Message.StartsWith("ready", StringComparison.Ordinal) == true, ReadyTimeout);
        if (ready is null)
        {
            var transcript = process.Transcript();
            await daemon.DisposeAsync();
            Assert.Fail($"daemon did not log a 'ready' line within {ReadyTimeout.TotalSeconds}s:\n{transcript}\n--- config ---\n{await File.ReadAllTextAsync(configPath)}");
        }

        return daemon;
    }

    /// <summary>Runs a one-shot verb (rules, check-config, remove-rules) in the namespace.</summary>
    public static Task<ProcessResult> RunVerbAsync(NetworkNamespace ns, string verb, string configPath) =>
        ns.RunAsync(DotnetHost, [AssemblyPath, verb, "--config", configPath], TimeSpan.FromSeconds(60));

    public IReadOnlyList<DaemonLogLine> LogLines() =>
        [.. _process.Lines.Where(l => !l.IsError).Select(l => DaemonLogLine.TryParse(l.Text)).OfType<DaemonLogLine>()];

    public IReadOnlyList<TransactionLog> Transactions() =>
        [.. LogLines().Where(l => l.Message.StartsWith("transaction", StringComparison.Ordinal)).Select(l => new TransactionLog(l))];

    /// <summary>
    /// Waits until at least <paramref name="count"/> transaction lines were logged: the daemon may log
    /// just after its reply reached the client. Returns whatever is there when time runs out.
    /// </summary>
    public async Task<IReadOnlyList<TransactionLog>> WaitForTransactionsAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (Transactions().Count < count && DateTime.UtcNow < deadline && !_process.HasExited)
        {
            await Task.Delay(100);
        }

        return Transactions();
    }

    /// <summary>SIGTERM, as systemd would stop it; returns the exit code, or null if it did not exit in time.</summary>
    public async Task<int?> StopAsync(TimeSpan? timeout = null)
    {
        await _process.SignalAsync("TERM");
        return await _process.WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(20)) ? _process.ExitCode : null;
    }

    /// <summary>
    /// Runs <paramref name="action"/> with the daemon stopped (SIGSTOP, then SIGCONT whatever happens): a test that
    /// tampers with the tables and looks at the result needs the daemon not to hear the change and restore them first.
    /// </summary>
    public async Task<T> WhileFrozenAsync<T>(Func<Task<T>> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        await _process.SignalAsync("STOP");
        try
        {
            return await action();
        }
        finally
        {
            await _process.SignalAsync("CONT");
        }
    }

    public string Transcript() => _process.Transcript();

    public async ValueTask DisposeAsync()
    {
        // Always shown in the test's output: when a test fails this is the first thing to read.
        await TestContext.Out.WriteLineAsync(_process.Transcript());
        await _process.DisposeAsync();
    }
}
