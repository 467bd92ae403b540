using System.Diagnostics;
using System.Text.Json;
using Interceptor.Linux;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// `smtp-interceptor demo`: the whole path on the real kernel with nothing to set up. A throwaway network
/// namespace holds a fake MX (Postfix's smtp-sink on 127.0.0.2:25), the daemon and its nft table; user
/// nobody sends one message with swaks; we show what each side saw, then remove everything.
/// </summary>
public static class DemoCommand
{
    private const string SinkAddress = "127.0.0.2:25";
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(Arguments arguments)
    {
        _ = arguments;
        if (UserDatabase.EffectiveUid != 0)
        {
            await Console.Error.WriteLineAsync("smtp-interceptor demo: needs root (it creates a network namespace and an nft table inside it)");
            return 3;
        }

        var missing = new[] { ("ip", "iproute2"), ("nft", "nftables"), ("swaks", "swaks"), ("/usr/sbin/smtp-sink", "postfix"), ("setpriv", "util-linux") }
            .Where(t => !ExternalProcess.IsInstalled(t.Item1)).Select(t => t.Item2).ToList();
        if (missing.Count > 0)
        {
            await Console.Error.WriteLineAsync($"smtp-interceptor demo: missing tools; install them with: apt-get install -y {string.Join(' ', missing)}");
            return 3;
        }

        var ns = $"smtpi-demo-{Environment.ProcessId}";
        var work = Directory.CreateTempSubdirectory("smtpi-demo-");
        Process? sink = null;
        Process? daemon = null;
        try
        {
            Console.WriteLine($"smtp-interceptor demo — throwaway network namespace {ns}");
            await Must("ip", ["netns", "add", ns]);
            await Must("ip", ["-n", ns, "link", "set", "lo", "up"]);

            var dump = Directory.CreateDirectory(Path.Combine(work.FullName, "received"));
            File.SetUnixFileMode(work.FullName, (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(dump.FullName, (UnixFileMode)0b111_111_111); // smtp-sink writes as nobody
            sink = ExternalProcess.Start("ip", ["netns", "exec", ns, "/usr/sbin/smtp-sink", "-u", "nobody", "-d", Path.Combine(dump.FullName, "%M."), SinkAddress, "10"]);
            Console.WriteLine($"  fake MX: Postfix smtp-sink on {SinkAddress}, saving what it receives");

            var config = Path.Combine(work.FullName, "config.json");
            // State and control socket inside the work directory: the demo must leave nothing on the host, and must not
            // meet an installed daemon's /var/lib/smtp-interceptor or control socket.
            var state = Path.Combine(work.FullName, "state");
            var control = Path.Combine(work.FullName, "control.sock");
            await File.WriteAllTextAsync(config, $$"""
                {
                  "Relay": { "PermittedLocalDestinations": ["{{SinkAddress}}"], "ConnectTimeoutSeconds": 5, "ReplyTimeoutSeconds": 10 },
                  "State": { "Directory": "{{state}}" },
                  "Control": { "SocketPath": "{{control}}" }
                }
                """);
            daemon = ExternalProcess.Start("ip", ["netns", "exec", ns, .. ExternalProcess.Self(), "run", "--config", config]);
            var log = new DaemonLog(daemon);
            if (!await log.WaitForAsync(m => m.StartsWith("ready", StringComparison.Ordinal), StepTimeout))
            {
                await Console.Error.WriteLineAsync("  the daemon did not become ready:\n" + log.All());
                return 3;
            }

            Console.WriteLine("  daemon: " + log.Messages.First(m => m.StartsWith("ready", StringComparison.Ordinal)));
            Console.WriteLine($"\n  user nobody runs: swaks --server {SinkAddress} (a plain SMTP client that knows nothing of the interceptor)");
            var (code, output, error) = await ExternalProcess.RunAsync("ip", [
                "netns", "exec", ns, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "swaks", "--server", SinkAddress, "--from", "website@customer.example", "--to", "someone@example.com",
                "--header", "Subject: hello from a customer script", "--body", "This went out through smtp-interceptor.\n"], StepTimeout);
            foreach (var line in output.Split('\n').Where(l => l.StartsWith("<-", StringComparison.Ordinal) || l.StartsWith(" ->", StringComparison.Ordinal) && !l.StartsWith(" -> ", StringComparison.Ordinal) || l.Contains("MAIL FROM", StringComparison.Ordinal) || l.Contains("RCPT TO", StringComparison.Ordinal) || l.EndsWith("> DATA", StringComparison.Ordinal) || l.EndsWith("> QUIT", StringComparison.Ordinal)))
            {
                Console.WriteLine("    " + line);
            }

            Console.WriteLine($"  swaks exit code: {code}{(error.Length > 0 ? "  " + error.Trim() : "")}");
            await log.WaitForAsync(m => m.StartsWith("transaction", StringComparison.Ordinal), StepTimeout);
            var transaction = log.Events.FirstOrDefault(e => e.Message.StartsWith("transaction", StringComparison.Ordinal));
            if (transaction.State.ValueKind == JsonValueKind.Object)
            {
                var s = transaction.State;
                Console.WriteLine($"\n  the daemon attributed it: uid={s.GetProperty("Uid")} user={s.GetProperty("User")} original destination={s.GetProperty("OriginalDestination")} upstream reply=\"{s.GetProperty("Reply")}\"");
            }

            var received = await WaitForFileAsync(dump.FullName, StepTimeout);
            var header = received is null ? null : File.ReadLines(received).FirstOrDefault(l => l.StartsWith("X-Interceptor-Origin:", StringComparison.Ordinal));
            Console.WriteLine($"  the fake MX received the trace header: {header ?? "(nothing received!)"}");

            foreach (var (name, note) in new[] { ("smtp_interceptor", "note the counters"), ("smtp_interceptor_guard", "refuses what was not redirected; 0 while the table above is intact") })
            {
                var (_, table, _) = await ExternalProcess.RunAsync("ip", ["netns", "exec", ns, "nft", "list", "table", "inet", name], StepTimeout);
                Console.WriteLine($"\n  nft list table inet {name} ({note}):");
                foreach (var line in table.TrimEnd().Split('\n'))
                {
                    Console.WriteLine("    " + line);
                }
            }

            return code == 0 && header is not null ? 0 : 1;
        }
        finally
        {
            foreach (var process in new[] { daemon, sink })
            {
                if (process is { HasExited: false })
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync();
                }

                process?.Dispose();
            }

            await ExternalProcess.RunAsync("ip", ["netns", "del", ns], StepTimeout);
            work.Delete(recursive: true);
            Console.WriteLine($"\n  cleaned up: namespace {ns} (with its nft tables) and {work.FullName} removed");
        }
    }

    private static async Task Must(string program, string[] arguments)
    {
        var (code, _, error) = await ExternalProcess.RunAsync(program, arguments, StepTimeout);
        if (code != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed ({code}): {error.Trim()}");
        }
    }

    private static async Task<string?> WaitForFileAsync(string directory, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var file = Directory.GetFiles(directory).FirstOrDefault();
            if (file is not null)
            {
                await Task.Delay(200); // let smtp-sink finish writing
                return file;
            }

            await Task.Delay(100);
        }

        return null;
    }
}
