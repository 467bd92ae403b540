using System.Globalization;
using System.Text.Json.Nodes;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A dialog for Fixtures/hostile_client.py: what a hostile or broken client does that a polite one never
/// would (talk before the greeting, stream megabytes without a line end, trickle bytes). The result has the
/// same shape as <see cref="SmtpDialog"/>'s, so <see cref="DialogResult"/> reads both.
/// </summary>
public sealed class HostileDialog
{
    private readonly JsonArray _steps = [];

    public HostileDialog(string server, double timeoutSeconds = 30, bool readGreeting = true)
    {
        Server = server;
        TimeoutSeconds = timeoutSeconds;
        ReadGreeting = readGreeting;
    }

    public string Server { get; }
    public double TimeoutSeconds { get; }

    /// <summary>False: the steps start right after connect, before the server said anything.</summary>
    public bool ReadGreeting { get; }

    /// <summary>Sends exact bytes (characters 0-255) and reads nothing.</summary>
    public HostileDialog Send(string label, string data) => Add(new JsonObject { ["label"] = label, ["send"] = data });

    /// <summary>Sends, then reads one reply recorded under the same label.</summary>
    public HostileDialog SendAndRead(string label, string data) => Send(label, data).Read(label);

    /// <summary>Streams <paramref name="bytes"/> bytes of <paramref name="pattern"/> repeated, without reading.</summary>
    public HostileDialog SendPattern(string label, string pattern, long bytes) =>
        Add(new JsonObject { ["label"] = label, ["send_pattern"] = pattern, ["bytes"] = bytes });

    /// <summary>One byte every <paramref name="intervalSeconds"/>; stops at the first reply (recorded as <paramref name="label"/>).</summary>
    public HostileDialog Trickle(string label, string data, double intervalSeconds) =>
        Add(new JsonObject { ["label"] = label, ["trickle"] = data, ["interval"] = intervalSeconds });

    public HostileDialog Read(string label) => Add(new JsonObject { ["label"] = label, ["read"] = true });

    /// <summary>Reads replies until the server closes (an entry with Eof) or the dialog's timeout passes (TimedOut).</summary>
    public HostileDialog ReadAll(string label) => Add(new JsonObject { ["label"] = label, ["read_all"] = true });

    /// <summary>Creates <paramref name="path"/> (in a world-writable directory) when the dialog gets here.</summary>
    public HostileDialog Mark(string label, string path) => Add(new JsonObject { ["label"] = label, ["mark"] = path });

    public HostileDialog Sleep(string label, double seconds) => Add(new JsonObject { ["label"] = label, ["sleep"] = seconds });

    public string ToJson() =>
        new JsonObject
        {
            ["server"] = Server,
            ["timeout"] = TimeoutSeconds,
            ["read_greeting"] = ReadGreeting,
            ["steps"] = _steps.DeepClone(),
        }.ToJsonString();

    /// <summary>Runs the dialog inside the namespace as <paramref name="user"/> (null = root).</summary>
    public async Task<DialogResult> RunAsync(NetworkNamespace ns, TestUser? user, TestDirectory dir, TimeSpan? timeout = null)
    {
        var file = dir.Write("hostile-" + Guid.NewGuid().ToString("N")[..8] + ".json", ToJson());
        var limit = timeout ?? TimeSpan.FromSeconds(TimeoutSeconds + 30);
        var process = await ns.RunAsUserAsync(user, Requirements.Python, ["-I", dir.PathOf("hostile_client.py"), file], limit);
        return DialogResult.Parse(process);
    }

    /// <summary>True when the dialog's last entry is the server closing (end of stream) or a reset/failed send.</summary>
    public static bool EndsClosed(DialogResult result) =>
        result.Replies.Count > 0 && (result.Replies[^1].Eof || result.Replies[^1].Error is not null);

    private HostileDialog Add(JsonObject step)
    {
        _steps.Add(step);
        return this;
    }
}

/// <summary>Memory figures of a running process from /proc/PID/status, in bytes.</summary>
public sealed record ProcessMemory(long PeakRss, long Rss)
{
    public double PeakMiB => PeakRss / 1024.0 / 1024.0;
    public double RssMiB => Rss / 1024.0 / 1024.0;

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"VmHWM {PeakMiB:F1} MiB, VmRSS {RssMiB:F1} MiB");

    /// <summary>
    /// VmHWM (peak resident set since start) and VmRSS of <paramref name="pid"/>. The daemon's pid is the
    /// pid the harness started: `ip netns exec` execs the program in place.
    /// </summary>
    public static ProcessMemory Of(int pid)
    {
        long Field(string[] lines, string name)
        {
            var line = lines.FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal))
                ?? throw new InvalidOperationException($"/proc/{pid}/status has no {name}");
            var kib = line[(name.Length + 1)..].Trim().Split(' ')[0];
            return long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
        }

        var status = File.ReadAllLines($"/proc/{pid}/status");
        return new ProcessMemory(Field(status, "VmHWM"), Field(status, "VmRSS"));
    }

    /// <summary>The command line of <paramref name="pid"/>, NULs as spaces (to check that the pid is the daemon).</summary>
    public static string CommandLineOf(int pid) => File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
}
