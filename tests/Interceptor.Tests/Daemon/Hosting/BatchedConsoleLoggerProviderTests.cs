using System.Text;
using System.Text.Json;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>The daemon's lines as the console logger wrote them: one JSON object each, scopes included, levels filtered,
/// and all of them out when the factory is disposed.</summary>
[TestFixture]
public class BatchedConsoleLoggerProviderTests
{
    private static readonly Action<ILogger, string, string, Exception?> Transaction =
        LoggerMessage.Define<string, string>(LogLevel.Information, new EventId(10), "transaction {Id} user={User}");

    private static readonly Action<ILogger, Exception?> Debug = LoggerMessage.Define(LogLevel.Debug, new EventId(11), "below the minimum level");

    private static readonly Action<ILogger, Exception?> Warning = LoggerMessage.Define(LogLevel.Warning, new EventId(12), "outside any scope");

    private static readonly Action<ILogger, Exception?> Error = LoggerMessage.Define(LogLevel.Error, new EventId(13), "broken");

    [Test]
    public void A_line_carries_its_state_and_the_scopes_it_was_logged_in()
    {
        var output = new StringWriter();
        using (var loggers = LoggerFactory.Create(builder =>
               {
                   builder.SetMinimumLevel(LogLevel.Information);
                   builder.AddBatchedConsole(JournalPriorityFormatter.JsonFormatter(JsonLogFormat.Configure), () => output);
               }))
        {
            var logger = loggers.CreateLogger("record");
            using (logger.BeginScope(new Dictionary<string, object> { ["SessionId"] = 7, ["User"] = "alice" }))
            {
                Transaction(logger, "t1", "alice", null);
            }

            Debug(logger, null);
            Warning(logger, null);
        }

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(2), output.ToString());
        using var first = JsonDocument.Parse(lines[0]);
        Assert.That(first.RootElement.GetProperty("Message").GetString(), Is.EqualTo("transaction t1 user=alice"));
        Assert.That(first.RootElement.GetProperty("Category").GetString(), Is.EqualTo("record"));
        Assert.That(first.RootElement.GetProperty("State").GetProperty("Id").GetString(), Is.EqualTo("t1"));
        Assert.That(first.RootElement.GetProperty("Scopes")[0].GetProperty("SessionId").GetInt32(), Is.EqualTo(7));
        using var second = JsonDocument.Parse(lines[1]);
        Assert.That(second.RootElement.GetProperty("LogLevel").GetString(), Is.EqualTo("Warning"));
        Assert.That(second.RootElement.GetProperty("Scopes").GetArrayLength(), Is.Zero);
    }

    [Test]
    public void Under_the_journal_each_line_starts_with_its_priority()
    {
        var output = new StringWriter();
        using (var loggers = LoggerFactory.Create(builder =>
                   builder.AddBatchedConsole(new JournalPriorityFormatter(JsonLogFormat.Configure), () => output)))
        {
            Error(loggers.CreateLogger("x"), null);
        }

        Assert.That(output.ToString(), Does.StartWith("<3>{"));
        Assert.That(output.ToString().Count(c => c == '\n'), Is.EqualTo(1));
    }
}
