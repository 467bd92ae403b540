using Interceptor.Core.Threading;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Store;

/// <summary>
/// Under its context a session's step never runs on the writer's thread in the middle of a batch: the writer posts
/// completions without saying it holds nothing (InlineContinuations.Allow), but lets the context keep one of them
/// (InlineContinuations.KeepOne), which its scheduler does for a light user's step, run on the writer once the batch is
/// answered, outside its lock, one a batch. Outside its context (its user alone) the step goes on where its write
/// completed, bounded by its slice like anywhere else, but never inside the writer's lock; nobody else's continuation
/// runs there.
/// </summary>
[TestFixture]
public class WriterCompletionTests
{
    [Test]
    public async Task A_write_awaited_under_a_context_is_posted_back_by_the_writer_thread_without_leave_to_run_it_there()
    {
        using var dir = new StoreTestDirectory(null);
        // Every write through the writer: one made on the test's thread (the writer idle) would post nothing at all.
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var context = new RecordingContext();
        List<(string? Thread, bool HoldingNothing, bool MayKeep)> byWriter = [];

        // Several at once: a write committed before its await looks posts nothing at all, and on a loaded machine all 20
        // can be (CI once). So the round is repeated (a few times at most) until the writer posted at least one.
        for (var round = 0; round < 5 && byWriter.Count == 0; round++)
        {
            var previous = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(context);
            Task awaited;
            try
            {
                awaited = Task.WhenAll(Enumerable.Range(0, 20).Select(i => AwaitWrite(store, round * 20 + i)));
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(previous);
            }

            await awaited;
            // (The awaits around the store's own, resumed on the pool, post too: only the writer's posts matter here.)
            lock (context.Posts)
            {
                byWriter = context.Posts.Where(p => p.Thread == "state-store-writer").ToList();
            }
        }

        Assert.That(byWriter, Is.Not.Empty);
        Assert.That(byWriter.Select(p => p.HoldingNothing), Is.All.False, "the writer gives no leave to run a session's step on its thread");
        Assert.That(byWriter.Select(p => p.MayKeep), Is.All.True, "but lets the context keep one (this one keeps none)");
        Assert.That(InlineContinuations.Allowed, Is.False);
    }

    [Test]
    public async Task A_step_its_context_keeps_runs_on_the_writer_after_the_batch_is_answered_outside_its_lock_one_a_batch()
    {
        using var dir = new StoreTestDirectory(null);
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var context = new KeepingContext();
        var resumed = new List<(string? Name, bool WriteLockHeldHere)>();
        var before = store.CommitCount;
        // A write committed before its await looks posts nothing: the round is repeated (a few times at most) until one
        // step was kept.
        for (var round = 0; round < 5 && !resumed.Any(r => r.Name == "state-store-writer"); round++)
        {
            var previous = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(context);
            Task steps;
            try
            {
                steps = Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
                {
                    await store.RecordTransactionAsync(Records.Transaction($"kept{round}-{i}", Records.Base, uid: 1000), CancellationToken.None);
                    lock (resumed)
                    {
                        resumed.Add((Thread.CurrentThread.Name, store.WriteLockHeldHere));
                    }
                }));
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(previous);
            }

            await steps.WaitAsync(TimeSpan.FromSeconds(20));
        }

        var onWriter = resumed.Where(r => r.Name == "state-store-writer").ToList();
        Assert.That(onWriter, Is.Not.Empty, "a kept step runs on the writer");
        Assert.That(onWriter.Select(r => r.WriteLockHeldHere), Is.All.False, "never inside the writer's lock");
        Assert.That(onWriter.Count, Is.LessThanOrEqualTo(store.CommitCount - before), "one step a batch on the writer");
        // (A write may complete between the store's own await and the caller's: kept, and its caller went on where it was.)
        Assert.That(onWriter.Count, Is.LessThanOrEqualTo(context.Kept), "only what was kept ran there");
    }

    [Test]
    public async Task A_kept_step_runs_only_once_every_other_write_of_its_batch_is_answered()
    {
        // The rest of the batch (other users' commits, on disk already) must not wait behind the kept step: every op of
        // the batch is answered (here: its continuation posted) before it runs. A post by the writer with the commit count
        // the kept step ran under, made after the step began, would be an op of its own batch answered behind it.
        using var dir = new StoreTestDirectory(null);
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var context = new KeepingContext(() => store.CommitCount);
        // A write committed before its await looks posts nothing: rounds are repeated (a few at most) until a kept step
        // shared its batch with another post, without which the order below says nothing.
        for (var round = 0; round < 5 && !context.KeptBesideOthers(); round++)
        {
            var previous = SynchronizationContext.Current;
            SynchronizationContext.SetSynchronizationContext(context);
            Task writes;
            try
            {
                writes = Task.WhenAll(Enumerable.Range(0, 30).Select(i => AwaitWrite(store, 1000 * (round + 1) + i)));
            }
            finally
            {
                SynchronizationContext.SetSynchronizationContext(previous);
            }

            await writes.WaitAsync(TimeSpan.FromSeconds(20));
        }

        Assert.That(context.KeptBesideOthers(), Is.True, "a kept step shared its batch with other answered writes");
        Assert.That(context.AnsweredBehindAKeptStep(), Is.Empty, "no op of a kept step's batch answered after it began");
    }

    [Test]
    public async Task A_step_of_a_session_outside_its_context_resumes_on_the_writer_outside_its_lock_and_may_write_again()
    {
        // A user alone: its sessions' steps run with no context wherever their awaits complete (a socket thread), and a
        // write's completion resumes the step on the writer's thread rather than waking a pool thread for it. Only once
        // the connection's lock is released: a step that writes again must not find itself inside the commit.
        using var dir = new StoreTestDirectory(null);
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var resumed = new List<(string? Name, bool WriteLockHeldHere)>();
        // A write committed before its await looks resumes where it was awaited: on a loaded machine all 20 can be, so the
        // round is repeated (a few times at most) until one of them really waited for the writer.
        for (var round = 0; round < 5 && !resumed.Any(r => r.Name == "state-store-writer"); round++)
        {
            var steps = Task.Run(() =>
            {
                StepLanes.Current = new RecordingStepLane { GoOn = true };
                return Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
                {
                    await store.RecordTransactionAsync(Records.Transaction($"first{round}-{i}", Records.Base, uid: 1000), CancellationToken.None);
                    var here = (Thread.CurrentThread.Name, store.WriteLockHeldHere);
                    await store.RecordTransactionAsync(Records.Transaction($"second{round}-{i}", Records.Base, uid: 1000), CancellationToken.None);
                    return here;
                }));
            });
            resumed.AddRange(await steps.WaitAsync(TimeSpan.FromSeconds(20)));
        }

        Assert.That(resumed.Select(r => r.Name), Has.Some.EqualTo("state-store-writer"), "resumed where the write completed");
        Assert.That(resumed.Select(r => r.WriteLockHeldHere), Is.All.False, "never inside the writer's lock");
    }

    [Test]
    public async Task Of_many_session_steps_in_one_batch_one_at_most_resumes_on_the_writer()
    {
        // A user alone sending DATA in many sessions at once must not hold the writer for a step of each in a row.
        using var dir = new StoreTestDirectory(null);
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var before = store.CommitCount;
        var resumedOn = await Task.Run(() =>
        {
            StepLanes.Current = new RecordingStepLane { GoOn = true };
            return Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
            {
                await store.RecordTransactionAsync(Records.Transaction("many" + i, Records.Base, uid: 1000), CancellationToken.None);
                return Thread.CurrentThread.Name;
            }));
        }).WaitAsync(TimeSpan.FromSeconds(20));

        var commits = store.CommitCount - before;
        Assert.That(commits, Is.LessThan(50), "some rows shared a batch");
        Assert.That(resumedOn.Count(n => n == "state-store-writer"), Is.LessThanOrEqualTo(commits), "one step a batch on the writer");
    }

    [Test]
    public async Task A_write_awaited_outside_any_session_never_resumes_on_the_writer_thread()
    {
        using var dir = new StoreTestDirectory(null);
        await using var store = dir.Open(Interceptor.Store.StoreTuning.Default with { WriteHereWhenIdle = false });
        var resumedOn = await Task.Run(() => Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
        {
            await store.RecordTransactionAsync(Records.Transaction("t" + i, Records.Base, uid: 1000), CancellationToken.None);
            return Thread.CurrentThread.Name;
        })));

        Assert.That(resumedOn, Has.None.EqualTo("state-store-writer"), "code that is not a session's step could hold the writer");
    }

    private static async Task AwaitWrite(Interceptor.Store.SqliteStateStore store, int i) =>
        await store.RecordTransactionAsync(Records.Transaction("t" + i, Records.Base, uid: 1000), CancellationToken.None);

    /// <summary>Notes who posted, whether they held nothing and whether it could be kept, then runs the continuation on the
    /// thread pool.</summary>
    private sealed class RecordingContext : SynchronizationContext
    {
        public List<(string? Thread, bool HoldingNothing, bool MayKeep)> Posts { get; } = [];

        public override void Post(SendOrPostCallback d, object? state)
        {
            lock (Posts)
            {
                Posts.Add((Thread.CurrentThread.Name, InlineContinuations.Allowed, InlineContinuations.CanKeep));
            }

            ThreadPool.QueueUserWorkItem(_ => d(state));
        }
    }

    /// <summary>
    /// Keeps what the posting thread lets it keep (as the scheduler does for a light user), else runs it on the pool; runs
    /// it as current context, as a scheduler's item does, so the awaits above the store's own go on inline with it. Given
    /// the store's commit count, it also notes, in one order, each post the writer makes and each kept step's start.
    /// </summary>
    private sealed class KeepingContext(Func<long>? commitCount = null) : SynchronizationContext
    {
        private readonly List<(long Order, long Commit)> _writerPosts = [];
        private readonly List<(long Order, long Commit)> _keptRuns = [];
        private long _order;
        private int _kept;

        public int Kept => Volatile.Read(ref _kept);

        /// <summary>A kept step ran after another post of the writer's under the same commit (its batch).</summary>
        public bool KeptBesideOthers()
        {
            lock (_writerPosts)
            {
                return _keptRuns.Any(k => _writerPosts.Count(p => p.Commit == k.Commit) >= 2);
            }
        }

        /// <summary>Posts by the writer made after a kept step began, under the commit it ran under.</summary>
        public List<(long Order, long Commit)> AnsweredBehindAKeptStep()
        {
            lock (_writerPosts)
            {
                return [.. _writerPosts.Where(p => _keptRuns.Any(k => k.Commit == p.Commit && p.Order > k.Order))];
            }
        }

        public override void Post(SendOrPostCallback d, object? state)
        {
            if (commitCount is not null && Thread.CurrentThread.Name == "state-store-writer")
            {
                lock (_writerPosts)
                {
                    _writerPosts.Add((Interlocked.Increment(ref _order), commitCount()));
                }
            }

            if (InlineContinuations.TryKeep(() => RunKept(d, state)))
            {
                Interlocked.Increment(ref _kept);
                return;
            }

            ThreadPool.QueueUserWorkItem(_ => RunAsCurrent(d, state));
        }

        private void RunKept(SendOrPostCallback d, object? state)
        {
            if (commitCount is not null)
            {
                lock (_writerPosts)
                {
                    _keptRuns.Add((Interlocked.Increment(ref _order), commitCount()));
                }
            }

            RunAsCurrent(d, state);
        }

        private void RunAsCurrent(SendOrPostCallback d, object? state)
        {
            var previous = Current;
            SetSynchronizationContext(this);
            try
            {
                d(state);
            }
            finally
            {
                SetSynchronizationContext(previous);
            }
        }
    }
}
