using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>
/// The host `run` builds: services start one after the other in the order given (the order of the daemon's guarantees),
/// "started" only after the last, stop in the reverse order after "stopping"; a service that cannot start stops the
/// start there, and the host does not repeat its reason in the log.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class DaemonHostTests
{
    [Test]
    public async Task Services_start_in_the_order_given_then_started_and_stop_in_reverse_after_stopping()
    {
        var events = new List<string>();
        var log = new RecordingLogger();
        using var host = DaemonHost.Build(
            new SingleLoggerFactory(log),
            lifetime =>
            {
                lifetime.ApplicationStarted.Register(() => events.Add("started"));
                lifetime.ApplicationStopping.Register(() => events.Add("stopping"));
                return new Recording("first", events);
            },
            new Recording("bind", events),
            new Recording("table", events),
            new Recording("listener", events));

        await host.StartAsync();
        await host.StopAsync();

        Assert.That(events, Is.EqualTo(new[]
        {
            "start first", "start bind", "start table", "start listener", "started",
            "stopping", "stop listener", "stop table", "stop bind", "stop first",
        }));
        Assert.That(Informational(log), Is.Empty, "the host says nothing of its own (no \"Application started\")");
    }

    [Test]
    public void A_service_that_cannot_start_stops_the_start_there_and_its_reason_is_not_logged_twice()
    {
        var events = new List<string>();
        var log = new RecordingLogger();
        using var host = DaemonHost.Build(
            new SingleLoggerFactory(log),
            _ => new Recording("first", events),
            new Recording("bind", events, fail: true),
            new Recording("table", events));

        var failure = Assert.ThrowsAsync<DaemonStartupException>(() => host.StartAsync());
        Assert.Multiple(() =>
        {
            Assert.That(failure!.ExitCode, Is.EqualTo(3));
            Assert.That(events, Is.EqualTo(new[] { "start first", "start bind" }), "nothing after the failed step starts (no table without the port)");
            Assert.That(host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStarted.IsCancellationRequested, Is.False, "so never READY");
            Assert.That(Informational(log), Is.Empty, "the host's \"Hosting failed to start\" is left out: the service said why");
        });
    }

    /// <summary>What the daemon's log would show (it logs from Information up).</summary>
    private static List<string> Informational(RecordingLogger log) =>
        [.. log.Entries.Where(l => l.Level >= LogLevel.Information).Select(l => l.Text)];

    private sealed class Recording(string name, List<string> events, bool fail = false) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            events.Add("start " + name);
            return fail ? Task.FromException(new DaemonStartupException(3, name + " failed")) : Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            events.Add("stop " + name);
            return Task.CompletedTask;
        }
    }

    private sealed class SingleLoggerFactory(ILogger logger) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => logger;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }
    }
}
