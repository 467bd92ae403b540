using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Maintenance;

/// <summary>
/// What wakes the table check: the periodic interval, and the kernel's nf_tables change notifications for our two
/// tables (<see cref="NftablesChangeMonitor"/>), so a flushed ruleset is restored at once instead of at the next tick.
/// A monitor that failed is started again at the next periodic check, which is all there is meanwhile.
/// </summary>
public sealed partial class TableWatchdog
{
    // After two checks in a row that the kernel asked for and that found nothing to restore (our own suspensions, a tool
    // rewriting our table in a loop), the least time before the next one: at most five listings (ten nft runs) a second.
    // One such check is not held back: our own restoration notifies too, and `systemctl restart nftables` flushes twice
    // in a row (the stop's flush, then the start's nftables.conf).
    private static readonly TimeSpan NotifiedSpacing = TimeSpan.FromMilliseconds(200);

    private readonly SemaphoreSlim _changed = new(0, 1);
    private NftablesChangeMonitor? _monitor;
    private volatile bool _monitorFailed;
    private volatile bool _deafLogged;
    private int _quietNotifiedChecks;

    /// <summary>Listen to the kernel's change notifications (the daemon does; a watchdog in a test may not).</summary>
    public bool HearChanges { get; init; }

    /// <summary>True while the kernel's change notifications for our tables are heard.</summary>
    public bool HearsChanges => _monitor is not null && !_monitorFailed;

    /// <summary>The kernel's count of ruleset changes, or null (logged) when it cannot be asked here.</summary>
    public static NftablesGeneration? TryOpenGeneration(ILogger logger)
    {
        try
        {
            return NftablesGeneration.Open();
        }
        catch (LinuxInteropException e)
        {
            logger.GenerationUnreadable(e.Message);
            return null;
        }
    }

    /// <summary>
    /// Asks for a check now: the kernel said one of our tables changed. Calls made while a check is already asked for add
    /// nothing; never blocks.
    /// </summary>
    public void NotifyChanged()
    {
        try
        {
            _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // A check is already due.
        }
        catch (ObjectDisposedException)
        {
            // Stopped.
        }
    }

    public override void Dispose()
    {
        _monitor?.Dispose();
        _changed.Dispose();
        base.Dispose();
    }

    /// <summary>Waits for the next check; true when the kernel asked for it, false at the periodic tick.</summary>
    private async Task<bool> WaitForCheckAsync(CancellationToken stoppingToken)
    {
        var notified = await _changed.WaitAsync(interval, stoppingToken);
        if (!notified && HearChanges && !HearsChanges)
        {
            StartHearing();
        }

        return notified;
    }

    private async Task AfterCheckAsync(bool notified, bool restored, CancellationToken stoppingToken)
    {
        _quietNotifiedChecks = notified && !restored ? _quietNotifiedChecks + 1 : 0;
        if (_quietNotifiedChecks >= 2)
        {
            await Task.Delay(NotifiedSpacing, stoppingToken);
        }
    }

    // (Re)starts the monitor; on a restart a check follows at once, for whatever changed while nobody listened.
    private void StartHearing()
    {
        if (!HearChanges)
        {
            return;
        }

        var restart = _monitor is not null || _deafLogged;
        _monitor?.Dispose();
        _monitor = null;
        try
        {
            _monitorFailed = false;
            _monitor = NftablesChangeMonitor.Start([spec.Table, spec.GuardTable], NotifyChanged, Deafened);
            if (restart)
            {
                _deafLogged = false;
                logger.ChangesHeardAgain(spec.Table);
                NotifyChanged();
            }
        }
        catch (LinuxInteropException e)
        {
            Deafened(e);
        }
    }

    // From the monitor's thread, or a failed start: logged once until the monitor hears again.
    private void Deafened(Exception e)
    {
        _monitorFailed = true;
        if (!_deafLogged)
        {
            _deafLogged = true;
            logger.ChangesNotHeard(e.Message, spec.Table, interval.TotalSeconds);
        }
    }
}
