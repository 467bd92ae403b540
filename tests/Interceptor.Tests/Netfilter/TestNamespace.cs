using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Interceptor.Netfilter;

namespace Interceptor.Tests.Netfilter;

/// <summary>
/// A throwaway network namespace with loopback up, for tests that need the real nft and real connections.
/// The host's own ruleset and network are never touched. <see cref="CreateOrSkip"/> makes the test
/// inconclusive when it cannot run here (not root, or a program missing); <see cref="Dispose"/> stops the
/// listeners and deletes the namespace.
/// </summary>
internal sealed class TestNamespace : IDisposable
{
    public const string Python = "/usr/bin/python3";

    // Prints "connected", "refused", "timeout" or "error TEXT", then the milliseconds the attempt took.
    private const string ConnectScript = """
        import socket, sys, time
        start = time.monotonic()
        try:
            socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
            result = "connected"
        except ConnectionRefusedError:
            result = "refused"
        except socket.timeout:
            result = "timeout"
        except OSError as e:
            result = "error " + str(e.strerror)
        print(result, int((time.monotonic() - start) * 1000))
        """;

    // Listens on every HOST:PORT[@BACKLOG] argument, says "ready", then prints "accepted HOST PORT" per connection.
    private const string ListenScript = """
        import socket, sys, threading
        def serve(server, host, port):
            while True:
                connection, _ = server.accept()
                print("accepted", host, port, flush=True)
                connection.close()
        for endpoint in sys.argv[1:]:
            host, port = endpoint.rsplit(":", 1)
            port, _, backlog = port.partition("@")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            server = socket.create_server((host, int(port)), family=family, backlog=int(backlog or "128"))
            threading.Thread(target=serve, args=(server, host, int(port)), daemon=True).start()
        print("ready", flush=True)
        threading.Event().wait()
        """;

    private readonly List<Listener> listeners = [];

    private TestNamespace(string name)
    {
        Name = name;
        Nft = new NftClient(name);
    }

    public string Name { get; }

    /// <summary>An nft client bound to this namespace.</summary>
    public NftClient Nft { get; }

    /// <summary>
    /// A new namespace, or an inconclusive test when this machine cannot make one; under CI (CI=true, root) a missing
    /// requirement fails the test instead, since a skipped kernel test there would hide a broken environment.
    /// </summary>
    public static TestNamespace CreateOrSkip(bool needsConnections = false)
    {
        Require(Environment.IsPrivilegedProcess, "needs root to create a network namespace");
        Require(File.Exists("/usr/sbin/nft") || File.Exists("/sbin/nft"), "needs nft");
        Require(File.Exists("/usr/sbin/ip") || File.Exists("/sbin/ip") || File.Exists("/bin/ip"), "needs ip");
        if (needsConnections)
        {
            Require(File.Exists(Python), $"needs {Python}");
            Require(File.Exists("/usr/bin/setpriv") || File.Exists("/bin/setpriv"), "needs setpriv (util-linux)");
        }

        var name = $"nf-ut-{Environment.ProcessId}-{Random.Shared.Next(100000)}";
        Require(Run("ip", "netns", "add", name).ExitCode == 0, "ip netns add failed");
        var created = new TestNamespace(name);
        if (needsConnections)
        {
            var up = created.Exec(["ip", "link", "set", "lo", "up"]);
            if (up.ExitCode != 0)
            {
                created.Dispose();
                Assert.Fail($"ip link set lo up failed: {up.StandardError}");
            }
        }

        return created;
    }

    /// <summary>
    /// Opens a TCP connection from inside the namespace, as <paramref name="uid"/> (gid the same, no groups)
    /// or as root when null, the way a customer's script would.
    /// </summary>
    public ConnectResult Connect(uint? uid, string host, int port)
    {
        var command = new List<string>();
        if (uid is { } id)
        {
            var text = id.ToString(CultureInfo.InvariantCulture);
            command.AddRange(["setpriv", $"--reuid={text}", $"--regid={text}", "--clear-groups"]);
        }

        command.AddRange([Python, "-c", ConnectScript, host, port.ToString(CultureInfo.InvariantCulture)]);
        var result = Exec(command);
        var words = result.StandardOutput.Trim().Split(' ');
        Assert.That(result.ExitCode, Is.Zero, $"the connect helper failed: {result.StandardError}");
        return new ConnectResult(string.Join(' ', words[..^1]), TimeSpan.FromMilliseconds(int.Parse(words[^1], CultureInfo.InvariantCulture)));
    }

    /// <summary>
    /// Starts a plain TCP listener on each <c>HOST:PORT</c> inside the namespace and waits until it listens;
    /// <c>HOST:PORT@BACKLOG</c> sets listen()'s backlog (128 otherwise).
    /// </summary>
    public Listener Listen(params string[] endpoints) => ListenAs(null, endpoints);

    /// <summary>The same, as <paramref name="uid"/> (gid the same, no groups), or as root when null.</summary>
    public Listener ListenAs(uint? uid, params string[] endpoints) => StartAs(uid, ListenScript, endpoints);

    /// <summary>
    /// Starts a Python <paramref name="script"/> inside the namespace as <paramref name="uid"/> (or root) and waits for its
    /// first line, which must be "ready"; its other lines are read with <see cref="Listener.NextLine"/>.
    /// </summary>
    public Listener StartAs(uint? uid, string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var text = uid?.ToString(CultureInfo.InvariantCulture);
        string[] user = text is null ? [] : ["setpriv", $"--reuid={text}", $"--regid={text}", "--clear-groups"];
        foreach (var argument in new[] { "netns", "exec", Name }.Concat(user).Concat([Python, "-u", "-c", script]).Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }

        var listener = new Listener(Process.Start(start)!);
        listeners.Add(listener);
        listener.WaitUntilReady();
        return listener;
    }

    /// <summary>Runs a command inside the namespace.</summary>
    public ProcessResult Exec(IEnumerable<string> command) => Run("ip", ["netns", "exec", Name, .. command]);

    /// <summary>The packets counted by the first rule of <paramref name="chain"/> that <paramref name="which"/> selects.</summary>
    public async Task<long> PacketsAsync(string chain, Func<NftJson.Rule, bool> which, string table = "smtp_interceptor")
    {
        using var listed = await Nft.ListTableAsync(table, CancellationToken.None);
        Assert.That(listed, Is.Not.Null, $"table {table} is missing");
        var objects = NftJson.Objects(listed!, table);
        var rule = objects
            .Where(o => o.Kind == "rule" && NftJson.String(o.Body, "chain") == chain)
            .Select(o => NftJson.ParseRule(o.Body, objects))
            .FirstOrDefault(which);
        Assert.That(rule, Is.Not.Null, $"no such rule in chain {chain}");
        return rule!.Packets ?? throw new AssertionException($"rule {rule.Describe()} has no counter");
    }

    /// <summary>The handle of the table: it changes when the table is replaced, and only then.</summary>
    public async Task<long> TableHandleAsync(string table = "smtp_interceptor")
    {
        using var listed = await Nft.ListTableAsync(table, CancellationToken.None);
        var body = NftJson.Objects(listed!, table).Single(o => o.Kind == "table").Body;
        return body.GetProperty("handle").GetInt64();
    }

    public void Dispose()
    {
        foreach (var listener in listeners)
        {
            listener.Dispose();
        }

        Run("ip", "netns", "del", Name);
    }

    private static void Require(bool condition, string reason)
    {
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.That(condition, Is.True, reason + " (CI=true: a kernel test may not be skipped)");
        }
        else
        {
            Assume.That(condition, reason);
        }
    }

    public static ProcessResult Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new ProcessResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    internal sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError);

    /// <summary>What a connection attempt ended with ("connected", "refused", "timeout", "error …") and how long it took.</summary>
    internal sealed record ConnectResult(string Outcome, TimeSpan Elapsed);

    /// <summary>A running listener; <see cref="Accepted"/> holds "HOST PORT" for every connection it accepted.</summary>
    internal sealed class Listener : IDisposable
    {
        private readonly Process process;
        private readonly BlockingCollection<string> lines = [];
        private readonly ConcurrentQueue<string> accepted = new();

        public Listener(Process process)
        {
            this.process = process;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    lines.CompleteAdding();
                    return;
                }

                if (e.Data.StartsWith("accepted ", StringComparison.Ordinal))
                {
                    accepted.Enqueue(e.Data["accepted ".Length..]);
                }

                lines.Add(e.Data);
            };
            process.BeginOutputReadLine();
        }

        public IReadOnlyList<string> Accepted => [.. accepted];

        /// <summary>Waits up to two seconds for the listener to have accepted <paramref name="count"/> connections.</summary>
        public IReadOnlyList<string> WaitForAccepted(int count)
        {
            var deadline = Stopwatch.StartNew();
            while (accepted.Count < count && deadline.Elapsed < TimeSpan.FromSeconds(2))
            {
                Thread.Sleep(20);
            }

            return Accepted;
        }

        /// <summary>The script's next line of output, or null when none comes within <paramref name="timeout"/> or it ended.</summary>
        public string? NextLine(TimeSpan timeout) => lines.TryTake(out var line, timeout) ? line : null;

        public void WaitUntilReady()
        {
            if (!lines.TryTake(out var line, TimeSpan.FromSeconds(10)) || line != "ready")
            {
                var error = process.HasExited ? process.StandardError.ReadToEnd() : "(still running)";
                throw new InvalidOperationException($"the listener did not start: {line ?? "no output"} {error}");
            }
        }

        public void Dispose()
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            process.Dispose();
            lines.Dispose();
        }
    }
}
