using System.Text.Json;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Hosting;

public class JournalPriorityFormatterTests
{
    private static string Format(LogLevel level, string message, Exception? exception = null)
    {
        var formatter = new JournalPriorityFormatter(o => o.JsonWriterOptions = new JsonWriterOptions { Indented = false });
        var entry = new LogEntry<string>(level, "category", new EventId(7), message, exception, (state, _) => state);
        using var writer = new StringWriter();
        formatter.Write(entry, null, writer);
        return writer.ToString();
    }

    [TestCase(LogLevel.Critical, "<2>")]
    [TestCase(LogLevel.Error, "<3>")]
    [TestCase(LogLevel.Warning, "<4>")]
    [TestCase(LogLevel.Information, "<6>")]
    [TestCase(LogLevel.Debug, "<7>")]
    public void Line_starts_with_the_syslog_priority_then_the_unchanged_json_object(LogLevel level, string prefix)
    {
        var line = Format(level, "table restored");

        Assert.That(line, Does.StartWith(prefix + "{"));
        using var json = JsonDocument.Parse(line[prefix.Length..]);
        Assert.Multiple(() =>
        {
            Assert.That(json.RootElement.GetProperty("LogLevel").GetString(), Is.EqualTo(level.ToString()));
            Assert.That(json.RootElement.GetProperty("Message").GetString(), Is.EqualTo("table restored"));
            Assert.That(line.TrimEnd('\n').Contains('\n', StringComparison.Ordinal), Is.False, "one line");
        });
    }

    [Test]
    public void An_exception_stays_inside_the_one_line()
    {
        var line = Format(LogLevel.Error, "store failed", new InvalidOperationException("disk\nfull"));

        Assert.That(line, Does.StartWith("<3>{"));
        Assert.That(line.TrimEnd('\n').Contains('\n', StringComparison.Ordinal), Is.False);
    }

    [Test]
    public void Standard_output_is_not_the_journal_without_a_matching_journal_stream()
    {
        var saved = Environment.GetEnvironmentVariable("JOURNAL_STREAM");
        try
        {
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", null);
            Assert.That(JournalPriorityFormatter.StandardOutputIsJournal(), Is.False, "unset");
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", "8:1");
            Assert.That(JournalPriorityFormatter.StandardOutputIsJournal(), Is.False, "an inherited variable naming another socket");
        }
        finally
        {
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", saved);
        }
    }
}
