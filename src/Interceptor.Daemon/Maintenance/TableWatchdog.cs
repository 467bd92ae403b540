using Interceptor.Core.Policy;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Intercept;
using Interceptor.Netfilter;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Maintenance;

/// <summary>
/// Installs our nft table when the daemon starts (a hosted service, started right after the listener is bound), then
/// re-reads it every few seconds and puts it back (one atomic transaction) when someone deleted
/// or changed it, e.g. a `nft flush ruleset` by another firewall tool. Suspensions are taken from the registry,
/// so a restore never lets a suspended user out. With a <see cref="ListenerGuard"/> it also checks that the listener port
/// is still ours alone (issue 12.1) and switches between the normal table and its lockdown form (no redirect) accordingly.
/// Stopping leaves the table in place: port 25 stays closed to customers until the daemon is back (fail closed).
/// </summary>
public sealed class TableWatchdog(
    RulesetManager rules, RulesetSpec spec, SuspensionRegistry suspensions, TimeSpan interval, ILogger logger,
    ListenerGuard? listener = null) : BackgroundService
{
    private ListenerProblem? _lockdown;

    /// <summary>Why the table is in lockdown now; null while it redirects.</summary>
    public ListenerProblem? Lockdown => _lockdown;

    public int Restorations { get; private set; }

    /// <summary>Fills the expected suspension sets, sub-UID ranges included (re-read each check).</summary>
    public Decide.SuspendedUidSets SuspendedSets { get; init; } = Decide.SuspendedUidSets.None;

    /// <summary>
    /// Installs <c>spec</c> (the stored suspensions already in it), in its lockdown form when the listener port is not ours
    /// alone, then starts the checks. Not cut short by an early SIGTERM: nft replaces the table in one transaction.
    /// </summary>
    /// <exception cref="NetfilterException">The table could not be installed: the daemon does not start.</exception>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _lockdown = listener?.FindProblem(null);
        await rules.InstallAsync(spec with { Lockdown = _lockdown is not null }, CancellationToken.None);
        if (_lockdown is not null)
        {
            await listener!.ReportLockdownAsync(_lockdown, spec.Table, spec.Ports, CancellationToken.None);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the socket threads (nft's output comes through a pipe the socket engine polls): see ThreadPoolContext.
        await ThreadPoolContext.SwitchTo();

        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await CheckOnceAsync(stoppingToken);
                }
#pragma warning disable CA1031 // e.g. nft could not be started for lack of descriptors: retried at the next tick, never the end of the watchdog
                catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
                {
                    logger.TableCheckFailed(e, spec.Table, interval.TotalSeconds);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    public async Task CheckOnceAsync(CancellationToken cancellationToken)
    {
        var problem = listener?.FindProblem(_lockdown);
        var expected = SuspendedSets.Apply(spec, suspensions.KernelRefused.Select(s => s.Uid)) with { Lockdown = problem is not null };
        try
        {
            if ((problem is null) != (_lockdown is null) || (problem is not null && problem.Reason != _lockdown!.Reason))
            {
                await SwitchAsync(expected, problem, cancellationToken);
                return;
            }

            var differences = await rules.FindDifferencesAsync(expected, cancellationToken);
            if (differences.Count == 0)
            {
                return;
            }

            logger.TableChanged(spec.Table, string.Join("; ", differences));
            await rules.InstallAsync(expected, cancellationToken);
            Restorations++;
            logger.TableRestored(spec.Table);
        }
        catch (NetfilterException e)
        {
            logger.TableNotRestored(spec.Table, e.Message);
        }
    }

    // Into lockdown, out of it, or another reason: the table is replaced first, so a failed install is retried next tick.
    private async Task SwitchAsync(RulesetSpec expected, ListenerProblem? problem, CancellationToken cancellationToken)
    {
        var previous = _lockdown;
        if (problem is null || previous is null)
        {
            await rules.InstallAsync(expected, cancellationToken);
        }

        _lockdown = problem;
        if (problem is not null)
        {
            await listener!.ReportLockdownAsync(problem, spec.Table, spec.Ports, cancellationToken);
        }
        else
        {
            await listener!.ReportLiftedAsync(previous!.Reason, spec.Table, cancellationToken);
        }
    }
}
