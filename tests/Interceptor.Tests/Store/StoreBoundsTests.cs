using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Store;

namespace Interceptor.Tests.Store;

/// <summary>The store's bounds: tallies instead of a row per event, and the size cap's arithmetic and oldest-first pruning.</summary>
public class StoreBoundsTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;
    private static readonly DateTimeOffset QuotaWindow = Now.AddDays(-1);

    [TestCase(1000, 900, 0, 0)]
    [TestCase(1000, 1000, 0, 0)]
    [TestCase(1_000_000, 800_000, 1000, 200)]   // 1000 bytes a row: 200 rows free 200,000 bytes
    [TestCase(1_000_000, 999_000, 1000, 100)]   // one row's worth: still a minimum chunk
    [TestCase(100_000_000, 1_000_000, 1_000_000, StoreBudget.MaxChunk)]   // a huge excess goes in several chunks
    [TestCase(1_000_000, 0, 10, 10)]            // never more rows than there are
    public void Rows_to_delete_follow_the_average_row_size(long used, long target, long rows, int expected) =>
        Assert.That(StoreBudget.RowsToDelete(used, target, rows), Is.EqualTo(Math.Min(expected, (int)rows)));

    [Test]
    public void The_limit_is_the_cap_lowered_to_keep_the_minimum_free_space_and_pruning_goes_below_it()
    {
        Assert.Multiple(() =>
        {
            Assert.That(StoreBudget.Limit(maxBytes: 1000, allocatedBytes: 500, freeBytes: 10_000, minFreeBytes: 100), Is.EqualTo(1000), "plenty of room: the cap");
            Assert.That(StoreBudget.Limit(maxBytes: 1000, allocatedBytes: 500, freeBytes: 150, minFreeBytes: 100), Is.EqualTo(550), "the disk runs short first");
            Assert.That(StoreBudget.Limit(maxBytes: 1000, allocatedBytes: 500, freeBytes: 0, minFreeBytes: 1000), Is.EqualTo(475),
                "below the floor the file must not grow: pruned only as its free pages run out, never to nothing");
            Assert.That(StoreBudget.Limit(maxBytes: 1000, allocatedBytes: 500, freeBytes: long.MaxValue, minFreeBytes: 100), Is.EqualTo(1000), "free space unknown: plenty, no overflow");
            Assert.That(StoreBudget.Target(1000), Is.EqualTo(800));
            Assert.That(StoreBudget.DeepestTier(maxBytes: 1000, usedBytes: 1001), Is.EqualTo(PruneTier.QuotaHistory), "over the cap: the cap may take anything");
            Assert.That(StoreBudget.DeepestTier(maxBytes: 1000, usedBytes: 900), Is.EqualTo(PruneTier.NotCountedByQuotas), "only the disk is short");
        });
    }

    [Test]
    public async Task Over_the_cap_the_oldest_rows_go_first_and_the_last_days_deliveries_stay()
    {
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        await FillAsync(store);
        Assert.That(await store.EnforceSizeAsync(long.MaxValue, 0, QuotaWindow, CancellationToken.None), Is.Null, "under the cap nothing happens");

        var before = await UsedAsync(store);
        var report = await store.EnforceSizeAsync(before / 2, 0, QuotaWindow, CancellationToken.None);

        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        var old = left.Where(t => t.Started < QuotaWindow).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(report, Is.Not.Null);
            Assert.That(report!.UsedBefore, Is.EqualTo(before));
            Assert.That(report.UsedAfter, Is.LessThanOrEqualTo(StoreBudget.Target(before / 2)), "pruned below the cap");
            Assert.That(report.DeepestTier, Is.EqualTo(PruneTier.BeyondQuotaWindow));
            Assert.That(report.QuotaHistoryLost, Is.False);
            Assert.That(old, Is.Not.Empty, "not everything old went");
            Assert.That(old.Min(t => t.Started), Is.GreaterThan(Now.AddDays(-8)), "the oldest went first");
            Assert.That(left.Count(t => t.Uid == 7), Is.EqualTo(50), "the last day's deliveries are all there");
            Assert.That(left.Count(t => t.Uid == 8), Is.EqualTo(50), "the last day's refused transactions too (old rows sufficed)");
            Assert.That(report.OldestKept, Is.EqualTo(old.Min(t => t.Started)));
        });
    }

    [Test]
    public async Task A_cap_too_small_for_the_last_day_takes_what_no_quota_counts_before_the_deliveries_and_says_so()
    {
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        await FillAsync(store);

        var report = await store.EnforceSizeAsync(1, 0, QuotaWindow, CancellationToken.None);

        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(report!.DeepestTier, Is.EqualTo(PruneTier.QuotaHistory));
            Assert.That(report.QuotaHistoryLost, Is.True);
            Assert.That(left, Is.Empty, "a cap of one byte leaves nothing");
        });

        // With room for about the deliveries only, the refused ones of the last day go and the deliveries stay.
        using var dir2 = new StoreTestDirectory();
        await using var store2 = dir2.Open();
        await FillAsync(store2, old: 0, recent: 1000);
        var full = await UsedAsync(store2);
        var partial = await store2.EnforceSizeAsync((long)(full * 0.9), 0, QuotaWindow, CancellationToken.None);
        var kept = await store2.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(partial!.DeepestTier, Is.EqualTo(PruneTier.NotCountedByQuotas));
            Assert.That(partial.QuotaHistoryLost, Is.False);
            Assert.That(kept.Count(t => t.Uid == 7), Is.EqualTo(1000), "deliveries stay");
            Assert.That(kept.Count(t => t.Uid == 8), Is.LessThan(1000), "refused ones go first");
        });
    }

    [Test]
    public async Task A_disk_kept_short_by_others_prunes_only_to_make_room_in_the_file_and_never_the_last_days_deliveries()
    {
        // Free space far below State.MinFreeBytes (another user's files, say), the store under its cap. Deleting rows gives
        // no disk back, so before, every check lowered the limit by what it had deleted and emptied the store, the last
        // day's deliveries included (after a restart every user had a fresh day of quota).
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        await FillAsync(store, old: 0, recent: 1000);

        var report = await store.EnforceSizeAsync(long.MaxValue, long.MaxValue / 4, QuotaWindow, CancellationToken.None);
        var again = await store.EnforceSizeAsync(long.MaxValue, long.MaxValue / 4, QuotaWindow, CancellationToken.None);

        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(report, Is.Not.Null, "a full file below the floor: room is made in it");
            Assert.That(report!.DeepestTier, Is.EqualTo(PruneTier.NotCountedByQuotas));
            Assert.That(report.QuotaHistoryLost, Is.False);
            Assert.That(left.Count(t => t.Uid == 7), Is.EqualTo(1000), "the last day's deliveries are all there");
            Assert.That(left.Count(t => t.Uid == 8), Is.InRange(1, 999), "some of what no quota counts went, not all");
            Assert.That(again, Is.Null, "the next check finds room in the file: nothing more goes");
        });
    }

    [Test]
    public async Task Among_what_no_quota_counts_the_largest_contributors_rows_go_first_not_the_oldest()
    {
        // Bob floods the store with refused transactions (the disk kept short meanwhile); carol's few refusals of the same
        // day are older. Oldest first, hers went before any of his: the records of everyone else paid for his flood.
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        var reply = "550 " + new string('x', 300);
        var writes = new List<Task>();
        for (var i = 0; i < 20; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"carol{i}", Now.AddHours(-8).AddSeconds(i), uid: 9, outcome: TransactionOutcome.Refused) with { Reply = reply }, CancellationToken.None));
        }

        for (var i = 0; i < 1000; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"bob{i}", Now.AddHours(-6).AddSeconds(i), uid: 8, outcome: TransactionOutcome.Refused) with { Reply = reply }, CancellationToken.None));
        }

        await Task.WhenAll(writes);
        var full = await UsedAsync(store);

        var report = await store.EnforceSizeAsync((long)(full * 0.7), 0, QuotaWindow, CancellationToken.None);

        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(report!.DeepestTier, Is.EqualTo(PruneTier.NotCountedByQuotas));
            Assert.That(left.Count(t => t.Uid == 9), Is.EqualTo(20), "carol's records all stay");
            Assert.That(left.Count(t => t.Uid == 8), Is.InRange(1, 999), "bob's oldest went");
            Assert.That(left.Where(t => t.Uid == 8).Min(t => t.Started), Is.GreaterThan(Now.AddHours(-6)), "his oldest first");
            Assert.That(report.PrunedUsers, Is.EqualTo(new[] { "uid 8 (user8)" }), "the log names whose rows went");
        });
    }

    [Test]
    public async Task The_largest_contributor_is_the_one_whose_rows_take_the_most_room_not_the_most_rows()
    {
        // Dave writes fewer rows than bob but far longer ones (a long MAIL FROM, a long reply): ranked by rows, bob's
        // records would go for dave's flood.
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        var writes = new List<Task>();
        for (var i = 0; i < 1000; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"bob{i}", Now.AddHours(-8).AddSeconds(i), uid: 8, outcome: TransactionOutcome.Refused), CancellationToken.None));
        }

        for (var i = 0; i < 300; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"dave{i}", Now.AddHours(-6).AddSeconds(i), uid: 10, outcome: TransactionOutcome.Refused) with { Reply = "550 " + new string('y', 3000) }, CancellationToken.None));
        }

        await Task.WhenAll(writes);
        var full = await UsedAsync(store);

        var report = await store.EnforceSizeAsync((long)(full * 0.8), 0, QuotaWindow, CancellationToken.None);

        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(report!.PrunedUsers.Take(1), Is.EqualTo(new[] { "uid 10 (user10)" }), "dave's rows went first");
            Assert.That(left.Count(t => t.Uid == 8), Is.EqualTo(1000), "bob's many short rows stay");
            Assert.That(left.Count(t => t.Uid == 10), Is.LessThan(300));
        });
    }

    [Test]
    public async Task Over_the_cap_a_second_cut_of_the_floods_share_comes_before_anyone_elses_records()
    {
        // Bob's flood of refused transactions with carol's few refusals and the deliveries of the same hours among them,
        // the file over the cap. The pages his oldest rows leave keep the others' rows, so the cut to the common level
        // frees fewer pages than it planned. Before, falling short of the target then took everything no quota counts at
        // once (level 0), carol's records with it, although a second cut of his share got the store under the cap.
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        await FloodAmongOthersAsync(store);
        var full = await UsedAsync(store);
        var maxBytes = (long)(full * 0.85);

        var report = await store.EnforceSizeAsync(maxBytes, 0, QuotaWindow, CancellationToken.None);

        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(report!.UsedAfter, Is.LessThanOrEqualTo(maxBytes), "under the cap again");
            Assert.That(report.QuotaHistoryLost, Is.False);
            Assert.That(left.Count(t => t.Uid == 7), Is.EqualTo(400), "the deliveries stay");
            Assert.That(left.Count(t => t.Uid == 9), Is.EqualTo(100), "carol's records all stay");
            Assert.That(left.Count(t => t.Uid == 8), Is.InRange(1, 1899), "bob's oldest went");
            Assert.That(report.PrunedUsers, Is.EqualTo(new[] { "uid 8 (user8)" }), "only his");
        });
    }

    [Test]
    public async Task A_share_is_deleted_a_chunk_a_writer_job_oldest_first_up_to_its_bytes()
    {
        // A flood's share can be millions of rows: all of it in one writer job held every session's pending row for seconds.
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        var writes = new List<Task>();
        for (var i = 0; i < 250; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"bob{i}", Now.AddHours(-6).AddSeconds(i), uid: 8, outcome: TransactionOutcome.Refused), CancellationToken.None));
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"sent{i}", Now.AddHours(-6).AddSeconds(i), uid: 8), CancellationToken.None));
        }

        writes.Add(store.RecordRefusalAsync(Records.Refusal(Now.AddHours(-7), uid: 8), CancellationToken.None));
        writes.Add(store.RecordRefusalAsync(Records.Refusal(Now.AddHours(-7), uid: 9), CancellationToken.None));
        await Task.WhenAll(writes);
        var bob = new StoreContributor(8, "user8", 0, 0);

        var first = await store.RunOnWriterAsync(c => bob.DeleteOldest(c, long.MaxValue, long.MinValue, 100));
        var second = await store.RunOnWriterAsync(c => bob.DeleteOldest(c, 1, first.Cutoff, 100));
        var left = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, int.MaxValue, CancellationToken.None);
        var refusals = await store.LoadRefusalsAsync(DateTimeOffset.MinValue, null, CancellationToken.None);
        var refused = left.Where(t => t.Outcome == TransactionOutcome.Refused).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(first.Rows, Is.EqualTo(100), "a chunk: his refusal row and his 99 oldest refused transactions");
            Assert.That(first.Bytes, Is.GreaterThan(99 * 64));
            Assert.That(refusals.Select(r => r.Uid), Is.EqualTo(new[] { 9u }), "only his refusal went");
            Assert.That(second.Rows, Is.EqualTo(1), "one row is enough for one byte");
            Assert.That(second.Cutoff, Is.EqualTo(Now.AddHours(-6).AddSeconds(99).UtcTicks), "the next chunk starts after the last one's cut-off");
            Assert.That(refused, Has.Count.EqualTo(150));
            Assert.That(refused.Min(t => t.Started), Is.EqualTo(Now.AddHours(-6).AddSeconds(100)), "his oldest went first");
            Assert.That(left.Count(t => t.Outcome == TransactionOutcome.Delivered), Is.EqualTo(250), "rows a quota counts never go here");
        });
    }

    [TestCase(new long[] { 1000, 300, 20 }, 500, 500)]    // the largest alone covers it: cut to 500, the others untouched
    [TestCase(new long[] { 1000, 300, 20 }, 700, 300)]    // exactly down to the next one's share
    [TestCase(new long[] { 1000, 300, 20 }, 800, 250)]    // both above the level lose down to it: 750 + 50
    [TestCase(new long[] { 1000, 300, 20 }, 801, 249)]    // rounded so the excess covers the need
    [TestCase(new long[] { 1000, 300, 20 }, 5000, 0)]     // more than there is: everything
    [TestCase(new long[] { 500, 500 }, 100, 450)]         // equal shares lose equally
    [TestCase(new long[0], 100, 0)]
    public void The_level_takes_from_the_largest_shares_down_to_a_common_line(long[] shares, long needed, long expected) =>
        Assert.That(StoreContributor.Level(shares, needed), Is.EqualTo(expected));

    [Test]
    public async Task A_thousand_tallied_events_are_one_row_written_before_a_read_and_pruned_with_the_rest()
    {
        using var dir = new StoreTestDirectory();
        await using var store = dir.Open();
        // The start of a minute: a tally is one row per minute, and 1,000 events a millisecond apart starting late in a
        // minute would fall into two (a run at hh:mm:59.2 found 803 and 197).
        var threeDaysAgo = Now.AddDays(-3);
        var at = new DateTimeOffset(threeDaysAgo.Ticks - (threeDaysAgo.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);
        for (var i = 0; i < 1000; i++)
        {
            store.CountTally(TallyEntry.One(at.AddMilliseconds(i), 1001, "bob", TallyEntry.UnsentKindName(UnsentKind.MailRefused), "Refused", "555 5.5.4 MAIL parameter X-JUNK is not supported"));
        }

        var tallies = await store.LoadTalliesAsync(DateTimeOffset.MinValue, 1001, 100, CancellationToken.None);
        var users = await store.SummarizeUsersAsync(DateTimeOffset.MinValue, CancellationToken.None);
        store.CountTally(TallyEntry.One(at.AddSeconds(1), 1001, "bob", TallyEntry.UnsentKindName(UnsentKind.MailRefused), "Refused", "again"));
        var merged = await store.LoadTalliesAsync(DateTimeOffset.MinValue, 1001, 100, CancellationToken.None);
        await store.PruneAsync(Now.AddDays(-2), Now.AddDays(-2), CancellationToken.None);
        var pruned = await store.LoadTalliesAsync(DateTimeOffset.MinValue, null, 100, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(tallies.Select(t => (t.Count, t.Kind, t.Outcome)), Is.EqualTo(new[] { (1000L, "Unsent.MailRefused", "Refused") }));
            Assert.That(users.Single().Refused, Is.EqualTo(1000), "`users` counts them as refused transactions");
            Assert.That(merged.Select(t => (t.Count, t.Detail)), Is.EqualTo(new[] { (1001L, "again") }), "a later flush adds to the same row");
            Assert.That(pruned, Is.Empty, "retention prunes tallies");
        });
    }

    /// <summary>
    /// Bob's (uid 8) 2,000 refused transactions of the last hours, every twentieth of them carol's (uid 9) instead, and
    /// among them in time a longer delivery (uid 7) every fifth.
    /// </summary>
    private static async Task FloodAmongOthersAsync(SqliteStateStore store)
    {
        var writes = new List<Task>();
        for (var i = 0; i < 2000; i++)
        {
            var uid = i % 20 == 0 ? 9u : 8u;
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"r{i}", Now.AddHours(-6).AddSeconds(i), uid: uid, outcome: TransactionOutcome.Refused) with { Reply = "550 no" }, CancellationToken.None));
            if (i % 5 == 0)
            {
                writes.Add(store.RecordTransactionAsync(Records.Transaction($"sent{i}", Now.AddHours(-6).AddSeconds(i), uid: 7) with { Reply = "250 " + new string('x', 300) }, CancellationToken.None));
            }
        }

        await Task.WhenAll(writes);
    }

    private static Task<long> UsedAsync(SqliteStateStore store) => store.RunOnWriterAsync(StoreBudget.UsedBytes);

    /// <summary><paramref name="old"/> transactions 10 to 3 days old, and <paramref name="recent"/> deliveries (uid 7) and as many refused (uid 8) of the last hours.</summary>
    private static async Task FillAsync(SqliteStateStore store, int old = 2000, int recent = 50)
    {
        var reply = "250 " + new string('x', 300);
        var writes = new List<Task>();
        for (var i = 0; i < old; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"old{i}", Now.AddDays(-10).AddMinutes(i * 5), uid: 6) with { Reply = reply }, CancellationToken.None));
        }

        // In time order, as a daemon writes them: the refused ones first. (Deleting rows frees pages only when whole pages
        // empty; rows scattered among kept ones free little, which the cap then makes up for one tier further.)
        for (var i = 0; i < recent; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"refused{i}", Now.AddHours(-6).AddSeconds(i), uid: 8, outcome: TransactionOutcome.Refused) with { Reply = reply }, CancellationToken.None));
        }

        for (var i = 0; i < recent; i++)
        {
            writes.Add(store.RecordTransactionAsync(Records.Transaction($"sent{i}", Now.AddHours(-5).AddSeconds(i), uid: 7) with { Reply = reply }, CancellationToken.None));
        }

        await Task.WhenAll(writes);
    }
}
