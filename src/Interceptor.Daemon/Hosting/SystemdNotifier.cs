using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// The sd_notify protocol, spoken directly: one datagram per message to the Unix socket systemd names in
/// $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Tells systemd when the daemon is ready
/// (Type=notify), what it is doing (STATUS=), that it is alive (WATCHDOG=1 at half of $WATCHDOG_USEC) and that it
/// is stopping; <see cref="SystemdService"/> says each at its time in the host's life. Outside systemd (no $NOTIFY_SOCKET) every call does nothing, so `run` behaves the same in a terminal.
/// A failed send is logged, never thrown: notification must not take the daemon down.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;
    private readonly ILogger _logger;
    private readonly Lock _sendLock = new();

    private SystemdNotifier(string? socketPath, TimeSpan? watchdogTimeout, ILogger logger)
    {
        _logger = logger;
        WatchdogTimeout = watchdogTimeout;
        if (socketPath is null)
        {
            return;
        }

        // '@' marks the abstract namespace; on the wire the name starts with a NUL byte instead.
        _endpoint = new UnixDomainSocketEndPoint(socketPath[0] == '@' ? "\0" + socketPath[1..] : socketPath);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>True when systemd asked for notifications ($NOTIFY_SOCKET was set to a Unix socket).</summary>
    public bool IsEnabled => _socket is not null;

    /// <summary>WatchdogSec= of the unit, when systemd watches this process; null otherwise.</summary>
    public TimeSpan? WatchdogTimeout { get; }

    /// <summary>How often <see cref="SystemdService"/> pets the watchdog: half the timeout, as sd_watchdog_enabled(3) advises.</summary>
    public TimeSpan? WatchdogInterval => WatchdogTimeout / 2;

    /// <summary>
    /// Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then removes them from the environment so the child
    /// processes (nft, the alert command) cannot talk to systemd in the daemon's name.
    /// </summary>
    public static SystemdNotifier FromEnvironment(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var socket = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        var watchdogUsec = Environment.GetEnvironmentVariable("WATCHDOG_USEC");
        var watchdogPid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
        Environment.SetEnvironmentVariable("NOTIFY_SOCKET", null);
        Environment.SetEnvironmentVariable("WATCHDOG_USEC", null);
        Environment.SetEnvironmentVariable("WATCHDOG_PID", null);
        return Create(socket, watchdogUsec, watchdogPid, Environment.ProcessId, logger);
    }

    /// <summary>The same as <see cref="FromEnvironment"/> with the values given; for tests.</summary>
    public static SystemdNotifier Create(string? notifySocket, string? watchdogUsec, string? watchdogPid, int processId, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        string? path = null;
        if (!string.IsNullOrEmpty(notifySocket))
        {
            if (notifySocket[0] is '/' or '@' && notifySocket.Length > 1)
            {
                path = notifySocket;
            }
            else
            {
                // e.g. vsock:CID:PORT (systemd 254+, for VMs): not a socket this daemon will ever be handed.
                logger.NotifySocketInvalid(notifySocket);
            }
        }

        TimeSpan? watchdog = null;
        var forUs = string.IsNullOrEmpty(watchdogPid) ||
            (int.TryParse(watchdogPid, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid == processId);
        if (path is not null && forUs &&
            ulong.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0)
        {
            watchdog = TimeSpan.FromMicroseconds(usec);
        }

        return new SystemdNotifier(path, watchdog, logger);
    }

    /// <summary>READY=1 with a status line: call once the table is verified and the listeners accept connections.</summary>
    public bool Ready(string status) => Send($"READY=1\nSTATUS={OneLine(status)}");

    /// <summary>STATUS=…: the line `systemctl status` shows under the unit.</summary>
    public bool Status(string status) => Send($"STATUS={OneLine(status)}");

    /// <summary>STOPPING=1 with a status line: call when SIGTERM arrived, before draining the sessions.</summary>
    public bool Stopping(string status) => Send($"STOPPING=1\nSTATUS={OneLine(status)}");

    /// <summary>One WATCHDOG=1; <see cref="SystemdService"/> sends these on a timer.</summary>
    public bool Watchdog() => Send("WATCHDOG=1");

    private bool Send(string message)
    {
        if (_socket is null || _endpoint is null)
        {
            return false;
        }

        try
        {
            lock (_sendLock)
            {
                _socket.SendTo(Encoding.UTF8.GetBytes(message), SocketFlags.None, _endpoint);
            }

            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _logger.NotifyFailed(message.Replace('\n', ' '), e.Message);
            return false;
        }
    }

    /// <summary>The protocol is line-based: a newline in a status would start a new (bogus) assignment.</summary>
    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    public void Dispose() => _socket?.Dispose();
}
