// What the daemon's per-message log line costs (issue 19): the transaction line of LogTransactionRecorder, formatted
// by the daemon's own provider and JSON formatter and written by its line writer into Stream.Null, with and without
// the session's scope. Prints µs of wall time and of the process's CPU a line.
//
//   dotnet run -c Release --project tests/bench/LogLineBench [lines per pass, default 300000]
using System.Diagnostics;
using Interceptor.Core.Events;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Intercept;
using Interceptor.Daemon.Record;
using Microsoft.Extensions.Logging;

var lines = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 300_000;
var sink = new StreamWriter(Stream.Null);
var formatter = JournalPriorityFormatter.JsonFormatter(JsonLogFormat.Configure);
using var loggers = LoggerFactory.Create(b =>
{
    b.SetMinimumLevel(LogLevel.Information);
    b.AddBatchedConsole(formatter, () => sink);
});
var logger = loggers.CreateLogger("record");
var recorder = new LogTransactionRecorder(logger);
var transaction = new TransactionEvent(
    "01JABCDEFGHJKMNPQRSTVWXYZ0", DateTimeOffset.UtcNow, 1001, "bench", "bench@example.com", 1, 4200,
    "127.0.0.2:25", "127.0.0.2:25", "250 2.0.0 Ok: queued as 4XyZ", TimeSpan.FromMilliseconds(3));

foreach (var (pass, scoped) in new[] { ("warm-up", false), ("plain", false), ("scoped", true), ("plain", false), ("scoped", true) })
{
    var count = pass == "warm-up" ? lines * 2 : lines;
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    for (var i = 0; i < count; i++)
    {
        if (scoped)
        {
            using (logger.BeginScope(new SessionLogScope(i, 1001, "bench")))
            {
                recorder.Record(transaction);
            }
        }
        else
        {
            recorder.Record(transaction);
        }
    }

    clock.Stop();
    var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
    Console.WriteLine($"{pass,-8} {count} lines: {clock.Elapsed.TotalMicroseconds / count:F2} µs wall, {used.TotalMicroseconds / count:F2} µs CPU a line (every thread)");
}
