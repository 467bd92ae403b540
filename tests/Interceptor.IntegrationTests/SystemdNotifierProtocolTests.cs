using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Interceptor.Daemon.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The sd_notify protocol as systemd reads it, over a real datagram socket (a path and the abstract namespace): what the
/// packaged unit relies on for Type=notify and WatchdogSec (the booted-package test proves it under a real systemd).
/// </summary>
[TestFixture]
public sealed class SystemdNotifierProtocolTests
{
    [Test]
    public async Task Notifier_sends_ready_status_watchdog_and_stopping_to_a_path_socket()
    {
        using var dir = new TestDirectory();
        var path = dir.PathOf("notify.sock");
        using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        receiver.Bind(new UnixDomainSocketEndPoint(path));
        await AssertNotifierProtocolAsync(receiver, path);
    }

    [Test]
    public async Task Notifier_handles_the_abstract_namespace()
    {
        var name = "smtpi-notify-" + Guid.NewGuid().ToString("N")[..8];
        using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        receiver.Bind(new UnixDomainSocketEndPoint("\0" + name));
        await AssertNotifierProtocolAsync(receiver, "@" + name);
    }

    [Test]
    public async Task Notifier_outside_systemd_or_with_a_watchdog_for_another_pid_stays_quiet()
    {
        using var none = SystemdNotifier.Create(null, "30000000", null, Environment.ProcessId, NullLogger.Instance);
        using var otherPid = SystemdNotifier.Create("/run/nothing.sock", "30000000", "1", Environment.ProcessId, NullLogger.Instance);
        Assert.Multiple(() =>
        {
            Assert.That(none.IsEnabled, Is.False);
            Assert.That(none.Ready("ready"), Is.False);
            Assert.That(none.WatchdogInterval, Is.Null);
            Assert.That(otherPid.IsEnabled, Is.True);
            Assert.That(otherPid.WatchdogInterval, Is.Null, "WATCHDOG_PID names another process");
        });
    }

    private static async Task AssertNotifierProtocolAsync(Socket receiver, string notifySocket)
    {
        // WATCHDOG_USEC=400000: pets every 200 ms (SystemdService sends them on that timer; SystemdServiceTests).
        using var notifier = SystemdNotifier.Create(notifySocket, "400000", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), Environment.ProcessId, NullLogger.Instance);
        Assert.That(notifier.WatchdogInterval, Is.EqualTo(TimeSpan.FromMilliseconds(200)));

        Assert.That(notifier.Ready("ready: listening\non 127.0.0.1:24"), Is.True);
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("READY=1\nSTATUS=ready: listening on 127.0.0.1:24"), "a newline in a status must not start a new assignment");
        Assert.That(notifier.Watchdog(), Is.True);
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("WATCHDOG=1"));
        Assert.That(notifier.Stopping("stopping: 2 sessions open"), Is.True);
        Assert.That(await ReceiveAsync(receiver), Is.EqualTo("STOPPING=1\nSTATUS=stopping: 2 sessions open"));
    }

    private static async Task<string> ReceiveAsync(Socket receiver)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var received = await receiver.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        return Encoding.UTF8.GetString(buffer, 0, received);
    }
}
