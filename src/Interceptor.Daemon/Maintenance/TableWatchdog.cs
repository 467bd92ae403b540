using Interceptor.Core.Policy;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Intercept;
using Interceptor.Linux;
using Interceptor.Netfilter;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Maintenance;

/// <summary>
/// Installs our nft table when the daemon starts (a hosted service, started right after the listener is bound), then
/// checks it every few seconds, and at once when the kernel says one of our tables changed (TableWatchdog.Changes.cs),
/// and puts it back (one atomic transaction) when someone deleted or changed it, e.g. a `nft flush ruleset` by another
/// firewall tool. A periodic check reads the tables back with nft only when the ruleset's generation moved since they last
/// matched (<see cref="Generation"/>), or a minute has passed: nft costs several ms of CPU a run, the generation one
/// netlink request. Suspensions are taken from the registry, so a restore never lets a suspended user out. With a <see cref="ListenerGuard"/> it also checks that the listener port
/// is still ours alone (issue 12.1) and switches between the normal table and its lockdown form (no redirect) accordingly.
/// Stopping leaves the table in place: port 25 stays closed to customers until the daemon is back (fail closed).
/// </summary>
public sealed partial class TableWatchdog(
    RulesetManager rules, RulesetSpec spec, SuspensionRegistry suspensions, TimeSpan interval, ILogger logger,
    ListenerGuard? listener = null) : BackgroundService
{
    // The longest a periodic check trusts an unmoved generation: the kernel moves it at the start of a commit, before
    // some of the commit's updates land (chain policies, table flags), so a listing racing one could see the old state
    // under the new number. A check the kernel's notice asked for never trusts it.
    private static readonly TimeSpan ListAtLeastEvery = TimeSpan.FromMinutes(1);

    // The longest a difference in the suspension sets waits for a suspension in flight before it is restored anyway (the
    // expectation holds every suspension the registry has, so restoring is safe, only a wasted table replacement).
    private static readonly TimeSpan InFlightGrace = TimeSpan.FromSeconds(2);

    private ListenerProblem? _lockdown;

    // The ruleset's generation and the expected tables (rendered) when the tables last matched them; null until then
    // and after every change of ours.
    private (uint Generation, string Expected)? _verified;
    private DateTimeOffset _listedAt;
    private DateTimeOffset? _deferringSince;
    private int _restoresInARow;
    private bool _generationFailing;
    private int _installs;

    /// <summary>Why the table is in lockdown now; null while it redirects.</summary>
    public ListenerProblem? Lockdown => _lockdown;

    public int Restorations { get; private set; }

    /// <summary>Checks that read the tables back with nft (the others found the ruleset's generation unmoved).</summary>
    public int Listings { get; private set; }

    /// <summary>The clock of the once-a-minute listing.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The ruleset's generation, when the kernel can be asked; without it every check lists the tables.</summary>
    public NftablesGeneration? Generation { get; init; }

    /// <summary>
    /// Run after every install of the table (the first, each restore) and after every check a change notice asked for:
    /// someone may have deleted the table and put an identical one back, which the check finds intact. The metrics
    /// endpoint's sweep of connections made while the table was missing (<see cref="Metrics.MetricsPortSweep"/>) hangs
    /// here; it should return at once (the sweep starts its work on the thread pool).
    /// </summary>
    public Action? AfterTableChange { get; init; }

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

        // Listening before the install: its own notice is the first check, and nothing after READY goes unheard.
        StartHearing();
        await InstallAsync(spec with { Lockdown = _lockdown is not null }, CancellationToken.None);
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

        try
        {
            while (true)
            {
                var notified = await WaitForCheckAsync(stoppingToken);
                try
                {
                    await CheckOnceAsync(notified, stoppingToken);
                }
#pragma warning disable CA1031 // e.g. nft could not be started for lack of descriptors: retried at the next tick, never the end of the watchdog
                catch (Exception e) when (e is not OperationCanceledException)
#pragma warning restore CA1031
                {
                    logger.TableCheckFailed(e, spec.Table, interval.TotalSeconds);
                }

                await AfterCheckAsync(notified, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>
    /// Checks the tables and restores them if they differ from what they must hold. <paramref name="notified"/>: the
    /// kernel said one of them changed, so the check lists them whatever the generation says.
    /// </summary>
    public async Task CheckOnceAsync(bool notified, CancellationToken cancellationToken)
    {
        var installs = _installs;
        try
        {
            await CheckTablesAsync(notified, cancellationToken);
        }
        finally
        {
            // An install ran it already.
            if (notified && _installs == installs)
            {
                RunAfterTableChange();
            }
        }
    }

    private async Task CheckTablesAsync(bool notified, CancellationToken cancellationToken)
    {
        var problem = listener?.FindProblem(_lockdown);
        var expected = Expected(problem);
        try
        {
            if ((problem is null) != (_lockdown is null) || (problem is not null && problem.Reason != _lockdown!.Reason))
            {
                _verified = null;
                await SwitchAsync(expected, problem, cancellationToken);
                return;
            }

            // The rendered script stands for what the tables must hold: a suspension the registry has and the kernel
            // lacks (its nft command failed) is a difference even while the ruleset itself stays as it was.
            var rendered = RulesetRenderer.Render(expected);
            var generation = ReadGeneration();
            if (!notified && generation is { } now && _verified == (now, rendered) && Time.GetUtcNow() - _listedAt < ListAtLeastEvery)
            {
                return;
            }

            var differences = await ListAsync(expected, cancellationToken);
            if (differences.Count == 0)
            {
                // Trusted only if nothing was committed while nft listed: the next check then lists again.
                _verified = generation is { } before && ReadGeneration() == before ? (before, rendered) : null;
                _deferringSince = null;
                _restoresInARow = 0;
                return;
            }

            _verified = null;
            if (ShouldDefer(differences, problem, rendered))
            {
                // A suspension is between the registry and nft, or changed both while nft listed: the sets may disagree
                // with the expectation for a moment. Not a change behind our back (restoring would replace the table and
                // reset its counters); look again.
                NotifyChanged();
                return;
            }

            _deferringSince = null;
            _restoresInARow++;

            logger.TableChanged(spec.Table, string.Join("; ", differences));

            // The registry changes before the kernel, so an expectation taken now holds every suspension made so far.
            await InstallAsync(Expected(problem), cancellationToken);
            Restorations++;
            logger.TableRestored(spec.Table);
        }
        catch (NetfilterException e)
        {
            logger.TableNotRestored(spec.Table, e.Message);
        }
    }

    // Only differences in which users the suspension sets hold, only while a suspension is in flight or the registry
    // moved during the listing, and for InFlightGrace at most: anything structural (a table, chain, rule or set changed or
    // gone) is restored at once.
    private bool ShouldDefer(IReadOnlyList<string> differences, ListenerProblem? problem, string rendered)
    {
        var unsettled = suspensions.KernelChangesInFlight > 0 || RulesetRenderer.Render(Expected(problem)) != rendered;
        if (!unsettled || !differences.All(RulesetVerifier.IsSuspensionMembership))
        {
            return false;
        }

        _deferringSince ??= Time.GetUtcNow();
        return Time.GetUtcNow() - _deferringSince.Value < InFlightGrace;
    }

    private async Task InstallAsync(RulesetSpec expected, CancellationToken cancellationToken)
    {
        await rules.InstallAsync(expected, cancellationToken);
        _installs++;
        RunAfterTableChange();
    }

    private void RunAfterTableChange()
    {
        try
        {
            AfterTableChange?.Invoke();
        }
#pragma warning disable CA1031 // what runs after a change must not undo the install or end the watchdog
        catch (Exception e)
#pragma warning restore CA1031
        {
            logger.AfterTableChangeFailed(e, spec.Table);
        }
    }

    private Task<IReadOnlyList<string>> ListAsync(RulesetSpec expected, CancellationToken cancellationToken)
    {
        Listings++;
        _listedAt = Time.GetUtcNow();
        return rules.FindDifferencesAsync(expected, cancellationToken);
    }

    private RulesetSpec Expected(ListenerProblem? problem) =>
        SuspendedSets.Apply(spec, suspensions.KernelRefused.Select(s => s.Uid)) with { Lockdown = problem is not null };

    private uint? ReadGeneration()
    {
        try
        {
            var generation = Generation?.Read();
            _generationFailing = false;
            return generation;
        }
        catch (LinuxInteropException e)
        {
            // Logged when it starts failing, not at every check.
            if (!_generationFailing)
            {
                logger.GenerationUnreadable(e.Message);
            }

            _generationFailing = true;
            return null;
        }
    }

    // Into lockdown, out of it, or another reason: the table is replaced first, so a failed install is retried next tick.
    private async Task SwitchAsync(RulesetSpec expected, ListenerProblem? problem, CancellationToken cancellationToken)
    {
        var previous = _lockdown;
        if (problem is null || previous is null)
        {
            await InstallAsync(expected, cancellationToken);
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
