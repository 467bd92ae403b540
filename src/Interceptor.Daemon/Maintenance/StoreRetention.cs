using System.Globalization;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Hosting;
using Interceptor.Daemon.Record;
using Interceptor.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Maintenance;

/// <summary>
/// Keeps the state store bounded: deletes transactions, refusals and tallies past State.RetentionDays (hourly), and
/// every few seconds holds the database under State.MaxBytes (and the filesystem above State.MinFreeBytes free) by
/// pruning the oldest rows, with a warning and an alert (Alerts.Command, SMTPI_EVENT=store-pruned) before the disk fills.
/// A hosted service: the first checks run as the daemon starts.
/// </summary>
public sealed class StoreRetention(
    IStateStore store,
    StateOptions state,
    TimeSpan longestTransaction,
    TimeProvider time,
    ILogger logger,
    Func<string, IReadOnlyDictionary<string, string>, CancellationToken, Task>? alert = null,
    StoreMetrics? metrics = null) : BackgroundService
{
    /// <summary>How often the size is checked: a flood must not get far between two checks.</summary>
    public static readonly TimeSpan SizeCheckInterval = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan RetentionInterval = TimeSpan.FromHours(1);
    private static readonly TimeSpan AlertInterval = TimeSpan.FromMinutes(15);
    private DateTimeOffset _lastAlert = DateTimeOffset.MinValue;

    // A disk kept short, with nothing left that may go for its sake: said once in a while, not at every check.
    private DateTimeOffset _lastNothingToPrune = DateTimeOffset.MinValue;
    private bool _lastAlertLostQuotaHistory;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the socket threads: see ThreadPoolContext.
        await ThreadPoolContext.SwitchTo();

        using var timer = new PeriodicTimer(SizeCheckInterval);
        var lastRetention = DateTimeOffset.MinValue;
        try
        {
            do
            {
                var now = time.GetUtcNow();
                if (now - lastRetention >= RetentionInterval)
                {
                    lastRetention = now;
                    await RunAsync(() => store.PruneAsync(RefusalsBefore(now, state.Retention), RetainedFrom(now, state.Retention, longestTransaction), stoppingToken), "pruning the state store");
                }

                await RunAsync(() => EnforceSizeAsync(stoppingToken), "holding the state store under State.MaxBytes");
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>
    /// Where State.RetentionDays' pruning of transactions starts: never inside what the quotas may still count, a day and
    /// the longest transaction before it (<see cref="QuotaHistory.OldestCountedStart"/>), whose end may fall in the day
    /// however long the retention is set short against a long Smtp.SessionTimeoutSeconds. Refusals and tallies count
    /// toward nothing after a restart: they go at the retention's own cut-off, however long sessions may last.
    /// </summary>
    internal static DateTimeOffset RetainedFrom(DateTimeOffset now, TimeSpan retention, TimeSpan longestTransaction)
    {
        var counted = QuotaHistory.OldestCountedStart(now, longestTransaction);
        var retained = RefusalsBefore(now, retention);
        return retained < counted ? retained : counted;
    }

    /// <summary>Where refusals and tallies are pruned from: State.RetentionDays alone.</summary>
    internal static DateTimeOffset RefusalsBefore(DateTimeOffset now, TimeSpan retention) => now - retention;

    private async Task RunAsync(Func<Task> work, string what)
    {
        try
        {
            await work();
        }
        catch (StoreUnavailableException e)
        {
            logger.StoreUpkeepFailed(what, e.Message);
        }
    }

    private async Task EnforceSizeAsync(CancellationToken cancellationToken)
    {
        if (store is not SqliteStateStore sqlite)
        {
            return;
        }

        var now = time.GetUtcNow();
        var report = await sqlite.EnforceSizeAsync(state.MaxSize.Bytes, state.MinFree.Bytes, QuotaHistory.OldestCountedStart(now, longestTransaction), cancellationToken);
        if (report is null)
        {
            return;
        }

        if (report.RowsDeleted == 0)
        {
            if (now - _lastNothingToPrune < AlertInterval)
            {
                return;
            }

            _lastNothingToPrune = now;
        }
        else
        {
            metrics?.Pruned(report.QuotaHistoryLost);
        }

        var reason = Describe(report, state);
        logger.StoreOverMaxBytes(report.QuotaHistoryLost || report.UsedAfter > report.Limit ? LogLevel.Error : LogLevel.Warning, reason);

        if (alert is null || (now - _lastAlert < AlertInterval && (_lastAlertLostQuotaHistory || !report.QuotaHistoryLost)))
        {
            return;
        }

        _lastAlert = now;
        _lastAlertLostQuotaHistory = report.QuotaHistoryLost;
        var facts = new Dictionary<string, string>
        {
            ["SMTPI_STORE_USED_BYTES"] = report.UsedAfter.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_STORE_LIMIT_BYTES"] = report.Limit.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_STORE_ROWS_DELETED"] = report.RowsDeleted.ToString(CultureInfo.InvariantCulture),
            ["SMTPI_STORE_QUOTA_HISTORY_LOST"] = report.QuotaHistoryLost ? "yes" : "no",
        };
        await alert(reason, facts, cancellationToken);
    }

    /// <summary>The log line's and the alert's sentence.</summary>
    public static string Describe(PruneReport report, StateOptions state)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(state);
        var limit = report.Limit < state.MaxSize.Bytes
            ? $"{report.Limit} bytes (State.MaxBytes {state.MaxSize}, lowered to keep State.MinFreeBytes {state.MinFree} free on the filesystem)"
            : $"State.MaxBytes {state.MaxSize} bytes";
        var oldest = report.OldestKept is { } kept ? kept.ToString("O", CultureInfo.InvariantCulture) : "none";
        var consequence = report.RowsDeleted == 0 ? "nothing more may go for the disk's sake (the last day's deliveries, which the quotas count, "
            + "stay; deleting rows gives no disk back anyway): free space on the state filesystem" : report.DeepestTier switch
        {
            PruneTier.BeyondQuotaWindow => "only rows too old for any quota to count were deleted; quotas are intact",
            PruneTier.NotCountedByQuotas => report.PrunedUsers.Count == 0
                ? "rows of the last day that no quota counts were deleted too; quotas are intact"
                : $"rows of the last day that no quota counts were deleted too, those of the users whose rows took the most room first: {string.Join(", ", report.PrunedUsers)}; quotas are intact",
            _ => "the cap left no choice: deliveries of the last day were deleted, so quotas of the last day undercount after a restart",
        };
        return string.Create(CultureInfo.InvariantCulture,
            $"{report.UsedBefore} bytes used, limit {limit}: deleted the {report.RowsDeleted} oldest rows, {report.UsedAfter} bytes used now, oldest row kept {oldest}; {consequence}");
    }
}
