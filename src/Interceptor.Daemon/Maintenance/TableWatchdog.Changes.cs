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
    // After NotifiedBurst checks in a row that the kernel asked for (a tool rewriting our table in a loop, a burst of
    // suspensions), the least time before the next one: at most five checks (ten nft runs, plus an install) a second. The
    // first few are not held back: `systemctl restart nftables` flushes twice in a row (the stop's flush, then the start's
    // nftables.conf), and each of our restorations notifies too. A periodic check ends the run.
    private const int NotifiedBurst = 4;
    private static readonly TimeSpan NotifiedSpacing = TimeSpan.FromMilliseconds(200);

    private readonly SemaphoreSlim _changed = new(0, 1);
    private NftablesChangeMonitor? _monitor;
    private volatile bool _monitorFailed;
    private volatile bool _deafLogged;
    private int _notifiedInARow;

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

    /// <summary>
    /// Waits for the next check; true when the kernel asked for it, false at the periodic tick, where a failed monitor is
    /// started again, and one that has heard for a whole interval since is reported back.
    /// </summary>
    private async Task<bool> WaitForCheckAsync(CancellationToken stoppingToken)
    {
        var notified = await _changed.WaitAsync(interval, stoppingToken);
        if (!notified && HearChanges)
        {
            if (!HearsChanges)
            {
                StartHearing();
            }
            else if (_deafLogged)
            {
                _deafLogged = false;
                logger.ChangesHeard(spec.Table);
            }
        }

        return notified;
    }

    private async Task AfterCheckAsync(bool notified, CancellationToken stoppingToken)
    {
        _notifiedInARow = notified ? _notifiedInARow + 1 : 0;
        if (_restoresInARow >= 2)
        {
            // Restored, and the check our own install's notice asked for found the tables wrong again (nft lists what the
            // verifier cannot match, or a tool rewrites them at once): the period's pace, not the notices'.
            await Task.Delay(interval, stoppingToken);
        }
        else if (_notifiedInARow >= NotifiedBurst)
        {
            await Task.Delay(NotifiedSpacing, stoppingToken);
        }
    }

    // (Re)starts the monitor; after a failure a check follows at once, for whatever changed while nobody listened.
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
                NotifyChanged();
            }
        }
#pragma warning disable CA1031 // whatever stops the monitor leaves the periodic checks, never the watchdog, and is retried
        catch (Exception e)
#pragma warning restore CA1031
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
