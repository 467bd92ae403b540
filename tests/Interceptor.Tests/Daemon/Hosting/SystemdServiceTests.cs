using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>
/// What systemd hears from the hosted service, and when, on a real notify socket in the abstract namespace (no root, no
/// systemd): nothing before the host started every service; READY=1 with STATUS= in one datagram; WATCHDOG=1 on the timer;
/// STOPPING=1 as soon as the host is asked to stop; no WATCHDOG=1 after the service stopped.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class SystemdServiceTests
{
    [Test]
    public async Task Ready_comes_after_the_host_started_then_the_watchdog_on_its_timer_stopping_at_the_stop_request_and_then_silence()
    {
        var name = "smtpi-test-notify-" + Guid.NewGuid().ToString("N")[..8];
        using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        receiver.Bind(new UnixDomainSocketEndPoint("\0" + name));
        var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);

        // WATCHDOG_USEC=400000: a pet every 200 ms.
        using var notifier = SystemdNotifier.Create("@" + name, "400000", pid, Environment.ProcessId, NullLogger.Instance);
        var lifetime = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
        var readyCalls = 0;
        using var service = new SystemdService(
            notifier,
            lifetime,
            () =>
            {
                readyCalls++;
                return "relaying: table\nverified";
            },
            () => "stopping: 3 sessions still open",
            NullLogger.Instance);

        await service.StartAsync(CancellationToken.None);
        Assert.That(await ReceiveAsync(receiver, TimeSpan.FromMilliseconds(500)), Is.Null, "nothing before every hosted service started");
        Assert.That(readyCalls, Is.Zero);

        lifetime.NotifyStarted();
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("READY=1\nSTATUS=relaying: table verified"), "READY with its status in one datagram, on one line");
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("WATCHDOG=1"));
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("WATCHDOG=1"), "and again on the timer");

        lifetime.StopApplication();
        string? message;
        do
        {
            message = await ReceiveAsync(receiver);
        }
        while (message == "WATCHDOG=1");

        Assert.That(message, Is.EqualTo("STOPPING=1\nSTATUS=stopping: 3 sessions still open"));

        await service.StopAsync(CancellationToken.None);
        while (await ReceiveAsync(receiver, TimeSpan.FromMilliseconds(50)) is not null)
        {
            // A pet sent just before the stop.
        }

        var afterStop = await ReceiveAsync(receiver, TimeSpan.FromMilliseconds(600));
        Assert.Multiple(() =>
        {
            Assert.That(afterStop, Is.Null, "the feed ends with the service");
            Assert.That(readyCalls, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_stop_before_the_start_finished_never_says_ready()
    {
        var name = "smtpi-test-notify-" + Guid.NewGuid().ToString("N")[..8];
        using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        receiver.Bind(new UnixDomainSocketEndPoint("\0" + name));
        using var notifier = SystemdNotifier.Create("@" + name, null, null, Environment.ProcessId, NullLogger.Instance);
        var lifetime = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
        using var service = new SystemdService(notifier, lifetime, () => "ready", () => "stopping", NullLogger.Instance);

        await service.StartAsync(CancellationToken.None);
        lifetime.StopApplication();
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("STOPPING=1\nSTATUS=stopping"));
        lifetime.NotifyStarted();
        await service.StopAsync(CancellationToken.None);
        Assert.That(await ReceiveAsync(receiver, TimeSpan.FromMilliseconds(300)), Is.Null, "no READY=1 after STOPPING=1");
    }

    /// <summary>The next datagram, or null when none comes within <paramref name="wait"/> (5 s when not given).</summary>
    private static async Task<string?> ReceiveAsync(Socket receiver, TimeSpan? wait = null)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(wait ?? TimeSpan.FromSeconds(5));
        try
        {
            var received = await receiver.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            return Encoding.UTF8.GetString(buffer, 0, received);
        }
        catch (OperationCanceledException) when (wait is not null)
        {
            return null;
        }
    }
}
