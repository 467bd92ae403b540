using Interceptor.Core.Policy;
using Interceptor.Daemon.Intercept;
using Interceptor.Netfilter;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Maintenance;

/// <summary>
/// Re-reads our nft table every few seconds and puts it back (one atomic transaction) when someone deleted
/// or changed it, e.g. a `nft flush ruleset` by another firewall tool. Suspensions are taken from the registry,
/// so a restore never lets a suspended user out. With a <see cref="ListenerGuard"/> it also checks that the listener port
/// is still ours alone (issue 12.1) and switches between the normal table and its lockdown form (no redirect) accordingly;
/// <paramref name="lockdown"/> is the problem the daemon started with, if it started in lockdown.
/// </summary>
public sealed class TableWatchdog(
    RulesetManager rules, RulesetSpec spec, SuspensionRegistry suspensions, TimeSpan interval, ILogger logger,
    ListenerGuard? listener = null, ListenerProblem? lockdown = null) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private ListenerProblem? _lockdown = lockdown;

    /// <summary>Why the table is in lockdown now; null while it redirects.</summary>
    public ListenerProblem? Lockdown => _lockdown;

    public int Restorations { get; private set; }

    /// <summary>Fills the expected suspension sets, sub-UID ranges included (re-read each check).</summary>
    public Decide.SuspendedUidSets SuspendedSets { get; init; } = Decide.SuspendedUidSets.None;

    public void Start() => _loop = Task.Run(LoopAsync);

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                try
                {
                    await CheckOnceAsync(_stop.Token);
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
        var expected = SuspendedSets.Apply(spec, suspensions.All.Select(s => s.Uid)) with { Lockdown = problem is not null };
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

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _stop.Dispose();
    }
}
