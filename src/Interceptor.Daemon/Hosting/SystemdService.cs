using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// The daemon's word to systemd, at the host's moments: READY=1 (with the STATUS= line <paramref name="announceReady"/>
/// returns, in the same datagram) once the host has started every service, so after the table is verified and the
/// listener accepts; then WATCHDOG=1 every <see cref="SystemdNotifier.WatchdogInterval"/>; STOPPING=1 as soon as the
/// host is asked to stop (SIGTERM, SIGINT), before the sessions drain. Registered first, it stops last: the watchdog is
/// fed until the daemon is done.
/// </summary>
/// <remarks>
/// Not Microsoft.Extensions.Hosting.Systemd's lifetime, which would say READY and STOPPING at the same moments, because
/// its notifier leaves $NOTIFY_SOCKET to every child process (nft, the alert command: ours takes it out of the
/// environment first), its READY=1 carries no STATUS= (the booted-package test reads "table … verified" from the
/// datagram that made the unit active), and it has no watchdog.
/// </remarks>
public sealed class SystemdService(
    SystemdNotifier notifier,
    IHostApplicationLifetime lifetime,
    Func<string> announceReady,
    Func<string> announceStopping,
    ILogger logger,
    Func<bool>? isHealthy = null) : BackgroundService
{
    private CancellationTokenRegistration _stopping;

    /// <summary>Listens for the stop request before anything else starts: STOPPING=1 must never be missed.</summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(() => notifier.Stopping(announceStopping()));
        return base.StartAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _stopping.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the socket threads: see ThreadPoolContext.
        await ThreadPoolContext.SwitchTo();

        if (!await StartedAsync(stoppingToken) || lifetime.ApplicationStopping.IsCancellationRequested)
        {
            return;
        }

        notifier.Ready(announceReady());
        if (notifier.WatchdogInterval is not { } interval)
        {
            await WaitAsync(stoppingToken);
            return;
        }

        using var timer = new PeriodicTimer(interval);
        notifier.Watchdog();
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (isHealthy is null || isHealthy())
                {
                    notifier.Watchdog();
                }
                else
                {
                    logger.HealthCheckFailed(notifier.WatchdogTimeout);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping: the feed ends with the daemon.
        }
    }

    /// <summary>True once every hosted service started; false when the host stopped first.</summary>
    private async Task<bool> StartedAsync(CancellationToken stoppingToken)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(lifetime.ApplicationStarted, stoppingToken);
        await WaitAsync(either.Token);
        return lifetime.ApplicationStarted.IsCancellationRequested && !stoppingToken.IsCancellationRequested;
    }

    private static async Task WaitAsync(CancellationToken token)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, token);
        }
        catch (OperationCanceledException)
        {
            // That is what was waited for.
        }
    }
}
