using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// The JSON console format with a syslog priority prefix ("&lt;4&gt;" for a warning) on every line, for when
/// standard output is the journal. journald strips the prefix and files the line under that priority
/// (SyslogLevelPrefix=, on by default), so `journalctl -u smtp-interceptor -p warning` shows exactly the
/// warnings and errors while the stored message stays the same one-JSON-object line. Written as a wrapper
/// around the built-in JSON formatter (which is internal) so the JSON itself is unchanged.
/// </summary>
public sealed class JournalPriorityFormatter : ConsoleFormatter
{
    public const string FormatterName = "json-journal";

    private readonly ConsoleFormatter _json;

    public JournalPriorityFormatter(Action<JsonConsoleFormatterOptions> configure)
        : base(FormatterName)
    {
        _json = JsonFormatter(configure);
    }

    /// <summary>The framework's JSON console formatter (internal: a throwaway container is the only way to get one).</summary>
    public static ConsoleFormatter JsonFormatter(Action<JsonConsoleFormatterOptions> configure)
    {
        using var services = new ServiceCollection()
            .AddLogging(builder => builder.AddJsonConsole(configure))
            .BuildServiceProvider();
        return services.GetServices<ConsoleFormatter>().Single(f => f.Name == ConsoleFormatterNames.Json);
    }

    /// <summary>
    /// True when standard output is the journal stream systemd connected: $JOURNAL_STREAM names the stream's
    /// "device:inode", and fd 1 must be that very socket (a child that inherited the variable but writes to a
    /// pipe, e.g. the daemon started by a test under a systemd service, must keep plain JSON lines).
    /// </summary>
    public static bool StandardOutputIsJournal()
    {
        var stream = Environment.GetEnvironmentVariable("JOURNAL_STREAM");
        if (string.IsNullOrEmpty(stream) || stream.Split(':') is not [_, var inode])
        {
            return false;
        }

        try
        {
            // /proc/self/fd/1 of a socket reads "socket:[INODE]".
            return new FileInfo("/proc/self/fd/1").LinkTarget == $"socket:[{inode}]";
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>syslog(3) priorities: err 3, warning 4, info 6, debug 7 (critical → crit 2).</summary>
    public static int Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        if (logEntry.Exception is null && logEntry.Formatter(logEntry.State, null) is null)
        {
            return; // the JSON formatter writes nothing either: no lone prefix
        }

        // The console logger hands every formatter a per-entry buffer, so prefix and line are written as one.
        textWriter.Write('<');
        textWriter.Write(Priority(logEntry.LogLevel));
        textWriter.Write('>');
        _json.Write(logEntry, scopeProvider, textWriter);
    }
}
