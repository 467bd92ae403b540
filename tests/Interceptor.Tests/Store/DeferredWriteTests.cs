using Interceptor.Core.Events;
using Interceptor.Core.Policy;
using Interceptor.Store;

namespace Interceptor.Tests.Store;

/// <summary>
/// A transaction's outcome is written deferred: it rides with the next batch (one commit per relayed message
/// instead of two) or goes alone after a delay, and is never left behind by a read or a close.
/// </summary>
[TestFixture]
public class DeferredWriteTests
{
    // Long enough that only the path under test can commit a deferred write within a test.
    private static readonly StoreTuning NoTimer = StoreTuning.Default with { DeferredCommitDelay = TimeSpan.FromMinutes(5) };

    private StoreTestDirectory _dir = null!;

    [SetUp]
    public void SetUp() => _dir = new StoreTestDirectory();

    [TearDown]
    public void TearDown() => _dir.Dispose();

    private static TransactionEvent Pending(string id) => Records.Transaction(id, Records.Base, outcome: TransactionOutcome.Pending);

    private static TransactionEvent Delivered(string id) => Records.Transaction(id, Records.Base, outcome: TransactionOutcome.Delivered);

    [Test]
    public async Task An_outcome_rides_with_the_next_write_in_one_commit()
    {
        await using var store = _dir.Open(NoTimer);
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var before = store.CommitCount;

        var outcome = store.RecordOutcomeDeferred(Delivered("t1"));
        await Task.Delay(200);
        Assert.That(outcome.IsCompleted, Is.False, "a deferred write alone must not wake the writer");
        Assert.That(store.CommitCount, Is.EqualTo(before));

        await store.RecordTransactionAsync(Pending("t2"), CancellationToken.None);

        Assert.That(outcome.IsCompletedSuccessfully, "the next batch carries the deferred write");
        Assert.That(store.CommitCount, Is.EqualTo(before + 1));
    }

    [Test]
    public async Task An_outcome_alone_is_committed_after_the_delay()
    {
        await using var store = _dir.Open(StoreTuning.Default with { DeferredCommitDelay = TimeSpan.FromMilliseconds(50) });
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var before = store.CommitCount;

        var outcome = store.RecordOutcomeDeferred(Delivered("t1"));

        Assert.That(await Task.WhenAny(outcome, Task.Delay(TimeSpan.FromSeconds(10))), Is.SameAs(outcome), "committed without any other write");
        Assert.That(store.CommitCount, Is.EqualTo(before + 1));
        await outcome;
    }

    [Test]
    public async Task Writes_queued_while_outcomes_wait_are_never_slept_through()
    {
        // The daemon's rhythm: each session awaits its write, then leaves an outcome deferred. With outcomes always
        // waiting, the writer sleeps in its timed wait (5 minutes here): a queued write it missed would hang its session.
        const int sessions = 20;
        const int perSession = 50;
        await using var store = _dir.Open(NoTimer);
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<Task>();

        var sessionsDone = Task.WhenAll(Enumerable.Range(0, sessions).Select(s => Task.Run(async () =>
        {
            for (var i = 0; i < perSession; i++)
            {
                await store.RecordTransactionAsync(Pending($"s{s}-{i}"), CancellationToken.None);
                outcomes.Add(store.RecordOutcomeDeferred(Delivered($"s{s}-{i}")));
            }
        })));

        Assert.That(await Task.WhenAny(sessionsDone, Task.Delay(TimeSpan.FromSeconds(60))), Is.SameAs(sessionsDone), "a write waited for the deferred delay");
        await sessionsDone;
        await store.RecordTransactionAsync(Pending("last"), CancellationToken.None);
        Assert.That(outcomes.All(o => o.IsCompletedSuccessfully), "every outcome rode with a later batch");
        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, sessions * perSession * 2, CancellationToken.None);
        Assert.That(rows.Count(r => r.Outcome == TransactionOutcome.Delivered), Is.EqualTo(sessions * perSession));
    }

    [Test]
    public async Task Reads_see_outcomes_not_committed_yet()
    {
        await using var store = _dir.Open(NoTimer);
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var outcome = store.RecordOutcomeDeferred(Delivered("t1"));

        var rows = await store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);

        Assert.That(rows.Select(r => (r.Id, r.Outcome)), Is.EqualTo(new[] { ("t1", TransactionOutcome.Delivered) }));
        Assert.That(outcome.IsCompletedSuccessfully);
    }

    [Test]
    public async Task A_read_waits_for_outcomes_a_commit_in_progress_has_taken_from_the_queue()
    {
        // A commit on a caller's thread (or the writer's) takes the deferred outcomes first, then runs its own write:
        // while that write runs, the queue is empty and the outcome is not on disk yet. A read judged by the queue
        // alone went ahead and missed it.
        await using var store = _dir.Open(NoTimer with { QuietBeforeWritingHere = TimeSpan.Zero, SlowWriteHere = TimeSpan.FromMinutes(1) });
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var outcome = store.RecordOutcomeDeferred(Delivered("t1"));
        using var inside = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var commit = Task.Run(() => store.WriteHereOrOnWriterAsync(_ =>
        {
            inside.Set();
            return release.Wait(TimeSpan.FromSeconds(30));
        }));
        Assert.That(inside.Wait(TimeSpan.FromSeconds(10)), "the blocking write started");
        Assert.That(outcome.IsCompleted, Is.False, "the outcome is taken but not committed");

        var read = store.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);
        var early = await Task.WhenAny(read, Task.Delay(300)) == read;
        release.Set();
        var rows = await read;

        Assert.That(await commit, Is.True, "the blocking write was released, not timed out");
        Assert.That(early, Is.False, "the read must wait for the commit that carries the outcome");
        Assert.That(rows.Select(r => (r.Id, r.Outcome)), Is.EqualTo(new[] { ("t1", TransactionOutcome.Delivered) }));
    }

    [Test]
    public async Task Closing_commits_outcomes_and_later_ones_fail()
    {
        var store = _dir.Open(NoTimer);
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var outcome = store.RecordOutcomeDeferred(Delivered("t1"));

        await store.DisposeAsync();

        Assert.That(outcome.IsCompletedSuccessfully);
        var late = store.RecordOutcomeDeferred(Delivered("t1"));
        Assert.That(late.IsFaulted && late.Exception!.InnerException is StoreUnavailableException, "a write after close must fail, not vanish");
        await using var reopened = _dir.Open();
        var rows = await reopened.LoadTransactionsAsync(DateTimeOffset.MinValue, null, 10, CancellationToken.None);
        Assert.That(rows.Select(r => r.Outcome), Is.EqualTo(new[] { TransactionOutcome.Delivered }));
    }

    [Test]
    public async Task A_failing_batch_fails_the_outcomes_it_carried()
    {
        var store = _dir.Open(NoTimer);
        await store.RecordTransactionAsync(Pending("t1"), CancellationToken.None);
        var outcome = store.RecordOutcomeDeferred(Delivered("t1"));

        File.Delete(_dir.Database);
        Assert.ThrowsAsync<StoreUnavailableException>(() => store.RecordTransactionAsync(Pending("t2"), CancellationToken.None));

        Assert.That(outcome.IsFaulted && outcome.Exception!.InnerException is StoreUnavailableException);
        await store.DisposeAsync();
    }
}
