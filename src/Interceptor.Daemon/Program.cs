using Interceptor.Core.Threading;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Control;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Interceptor.Daemon;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // Before anything opens a socket: .NET reads this once, when its socket engine starts.
        SocketThreads.PreferInlineCompletions();

        // Before the store (whose writer is the helper thread) opens: see HelperThreads.
        HelperThreads.YieldOnWakeWith(ThreadSchedulingPolicy.TrySetBatch);

        // .NET's own Console.Out flushes every 256 characters: a 700-byte transaction log line became three
        // write(2)s on the relay's hot path. One write per line (AutoFlush) keeps lines whole and prompt.
        // Before the logger factory: the console logger takes Console.Out when it is built.
        Console.SetOut(new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false), 64 * 1024) { AutoFlush = true });

        // One JSON object per line; under systemd each line also carries its syslog priority for journald (see
        // JournalPriorityFormatter). Written in batches by a thread of our own (BatchedConsoleLoggerProvider).
        ConsoleFormatter formatter = JournalPriorityFormatter.StandardOutputIsJournal()
            ? new JournalPriorityFormatter(JsonLogFormat.Configure)
            : JournalPriorityFormatter.JsonFormatter(JsonLogFormat.Configure);
        using var loggers = LoggerFactory.Create(builder =>
        {
            builder.SetMinimumLevel(LogLevel.Information);
            builder.AddBatchedConsole(formatter);
        });
        try
        {
            // Verbs, options, help and usage errors (exit 2): CommandLineDefinition.
            return await CommandLineDefinition.Create(loggers).InvokeAsync(args, Console.Error);
        }
        catch (ConfigurationException e)
        {
            // Messages name paths a walk of links found (PathCustody), whose names a customer may have chosen.
            await Console.Error.WriteLineAsync($"smtp-interceptor: {TerminalText.EscapeKeepingNewlines(e.Message)}");
            return 1;
        }
        catch (NetfilterException e)
        {
            await Console.Error.WriteLineAsync($"smtp-interceptor: {e.Message}");
            return 3;
        }
    }
}
