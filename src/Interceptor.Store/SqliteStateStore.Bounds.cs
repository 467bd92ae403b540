using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;

namespace Interceptor.Store;

/// <summary>
/// What keeps the store bounded: tallies (events a client can make thousands of a second, counted per user, kind and
/// minute instead of stored one row each) and the size cap (State.MaxBytes), which prunes the oldest rows.
/// </summary>
public sealed partial class SqliteStateStore
{
    /// <inheritdoc />
    public void CountTally(TallyEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        _tallies.Add(entry);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<TallyEntry>> LoadTalliesAsync(DateTimeOffset since, uint? uid, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return ReadAsync((c, ct) => StoreQueries.TalliesAsync(c, since, uid, limit, ct), cancellationToken);
    }

    /// <summary>
    /// Writes what was tallied since the last flush, one row update per user, kind and minute, and logs one line per
    /// such row: the only log line a flood of refused MAIL or MAIL+RSET gets. What cannot be written stays counted.
    /// </summary>
    public async Task FlushTalliesAsync(CancellationToken cancellationToken)
    {
        await _tallyFlush.WaitAsync(cancellationToken);
        try
        {
            var entries = _tallies.Drain();
            if (entries.Count == 0)
            {
                return;
            }

            try
            {
                await _writer.EnqueueAsync(
                    s =>
                    {
                        foreach (var entry in entries)
                        {
                            s.UpsertTally(entry);
                        }

                        return 0;
                    },
                    cancellationToken);
            }
            catch
            {
                foreach (var entry in entries)
                {
                    _tallies.Add(entry);
                }

                throw;
            }

            foreach (var e in entries)
            {
                _logger.TallyWritten(e);
            }
        }
        finally
        {
            _tallyFlush.Release();
        }
    }

    private async Task FlushTalliesQuietlyAsync()
    {
        try
        {
            await FlushTalliesAsync(CancellationToken.None);
        }
        catch (StoreUnavailableException e)
        {
            _logger.TalliesNotWrittenYet(e.Message);
        }
        catch (ObjectDisposedException)
        {
            // Closing: DisposeAsync flushes what is left.
        }
    }

    /// <summary>
    /// Keeps the store under <paramref name="maxBytes"/> (and the filesystem above <paramref name="minFreeBytes"/> free) by
    /// deleting the oldest rows: first those older than the quota window, then those of the window that no quota counts,
    /// and only if that is not enough for the cap itself the window's deliveries (<see cref="StoreBudget.DeepestTier"/>).
    /// Null when nothing had to go.
    /// </summary>
    public async Task<PruneReport?> EnforceSizeAsync(long maxBytes, long minFreeBytes, DateTimeOffset quotaWindowStart, CancellationToken cancellationToken)
    {
        var (used, allocated) = await _writer.EnqueueAsync(s => (StoreBudget.UsedBytes(s.Connection), StoreBudget.AllocatedBytes(s.Connection)), cancellationToken);
        var free = FreeBytes();
        var limit = StoreBudget.Limit(maxBytes, allocated, free, minFreeBytes);
        if (used <= limit)
        {
            return null;
        }

        var deepest = StoreBudget.DeepestTier(maxBytes, used);
        var target = StoreBudget.Target(limit);

        // The last day's deliveries go only as far as the cap itself needs: not to the disk's lower limit, nor to the
        // target's margin below the cap (each of them is a message some quota no longer counts).
        var quotaHistoryTarget = Math.Max(target, maxBytes);
        var before = used;
        long deleted = 0;
        var prunedUsers = new List<string>();
        var tier = PruneTier.BeyondQuotaWindow;
        while (true)
        {
            var currentTier = tier;
            var tierTarget = tier == PruneTier.QuotaHistory ? quotaHistoryTarget : target;
            var (removed, usedNow) = currentTier == PruneTier.NotCountedByQuotas
                ? await PruneNotCountedAsync(tierTarget, maxBytes, deepest, prunedUsers, cancellationToken)
                : await _writer.EnqueueAsync(
                    s =>
                    {
                        var rows = StoreBudget.RowsToDelete(StoreBudget.UsedBytes(s.Connection), tierTarget, StoreBudget.RowCount(s.Connection));
                        var gone = rows == 0 ? 0 : StoreBudget.DeleteOldest(s.Connection, currentTier, rows, quotaWindowStart);
                        return (gone, StoreBudget.UsedBytes(s.Connection));
                    },
                    cancellationToken);
            deleted += removed;
            used = usedNow;
            // Past the shares' tier, under the cap is enough: what the target's margin would take is others' records and
            // the last day's deliveries, and the next check plans afresh. (Under the cap, the disk's floor never takes
            // deliveries: deleting rows gives it nothing back.)
            if (used <= tierTarget || (currentTier == PruneTier.NotCountedByQuotas && used <= maxBytes))
            {
                break;
            }

            // The shares' tier is done once per enforcement (see PruneNotCountedAsync); the next check, seconds later, plans afresh.
            if (removed == 0 || currentTier == PruneTier.NotCountedByQuotas)
            {
                if (tier == deepest)
                {
                    break;
                }

                tier++;
            }
        }

        var oldest = await _writer.EnqueueAsync(s => StoreBudget.OldestRow(s.Connection), cancellationToken);
        return new PruneReport(before, used, limit, deleted, tier, oldest) { PrunedUsers = prunedUsers };
    }

    /// <summary>
    /// <see cref="PruneTier.NotCountedByQuotas"/>, once per enforcement: the users above a common level lose their oldest
    /// rows down to it. Not again at once for the disk's floor: a second plan would count the rows written meanwhile as
    /// progress and lower the level on what the first pass only fragmented, and the next check, seconds later, plans
    /// afresh. Over the cap itself (<paramref name="deepest"/> is the deliveries' tier), the level is planned once more
    /// (lower, so it may now reach users whose share was below the flood's but above the new level), and only if the
    /// store is still over <paramref name="maxBytes"/> does everything no quota counts go (level 0): going there whenever
    /// the first cut fell short of the target took everyone's records for a flood that a second cut of its own share
    /// would have paid for.
    /// </summary>
    private async Task<(int Removed, long Used)> PruneNotCountedAsync(long target, long maxBytes, PruneTier deepest, List<string> prunedUsers, CancellationToken cancellationToken)
    {
        var (removed, used) = await PruneLargestSharesAsync(target, prunedUsers, cancellationToken);
        if (deepest == PruneTier.QuotaHistory && used > target)
        {
            var (more, after) = await PruneLargestSharesAsync(target, prunedUsers, cancellationToken);
            (removed, used) = (removed + more, after);
        }

        if (deepest == PruneTier.QuotaHistory && used > maxBytes)
        {
            var (more, after) = await PruneLargestSharesAsync(null, prunedUsers, cancellationToken);
            (removed, used) = (removed + more, after);
        }

        return (removed, used);
    }

    /// <summary>
    /// One pass: one look at every user's share (a GROUP BY on a reader), then each user above the common level loses her
    /// oldest rows down to it, a chunk of them a writer job so the sessions' commits go in between. A null
    /// <paramref name="target"/>: level 0, all of it. Names the users in <paramref name="prunedUsers"/>.
    /// </summary>
    private async Task<(int Removed, long Used)> PruneLargestSharesAsync(long? target, List<string> prunedUsers, CancellationToken cancellationToken)
    {
        // A reader's snapshot: the GROUP BY reads every uncounted row of the day, and on the writer it held the sessions'
        // commits meanwhile. What is written after the snapshot counts at the next plan.
        var plan = await ReadAsync(
            (c, _) => Task.FromResult(StoreContributor.Plan(c, target is { } bytes ? Math.Max(0, StoreBudget.UsedBytes(c) - bytes) : long.MaxValue)),
            cancellationToken);
        var removed = 0;
        foreach (var share in plan)
        {
            // Each chunk starts after the last one's cut-off, so that none walks her index again past the rows of hers
            // that stay (her deliveries older than the cut-off).
            for (var (left, after) = (share.Excess, long.MinValue); left > 0;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var chunk = await _writer.EnqueueAsync(s => share.DeleteOldest(s.Connection, left, after, StoreContributor.RowsPerJob), cancellationToken);
                if (chunk.Rows == 0)
                {
                    break;
                }

                (removed, left, after) = (removed + chunk.Rows, left - chunk.Bytes, chunk.Cutoff);
                if (!prunedUsers.Contains(share.ToString()))
                {
                    prunedUsers.Add(share.ToString());
                }
            }
        }

        return (removed, await _writer.EnqueueAsync(s => StoreBudget.UsedBytes(s.Connection), cancellationToken));
    }

    /// <summary>Free bytes on the state filesystem for an unprivileged writer; long.MaxValue when it cannot be read.</summary>
    private long FreeBytes()
    {
        try
        {
            return new DriveInfo(System.IO.Path.GetDirectoryName(_path)!).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return long.MaxValue;
        }
    }
}
