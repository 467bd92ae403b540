using Interceptor.Daemon.Fairness;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>
/// Blocking work (a held message's fsync, say) holds its pump until it returns. One user's blocking work may hold at
/// most <see cref="FairShareScheduler.BlockingPumpsPerUser"/> pumps at once, so another user's items always find one.
/// Pumps run on threads of their own here, as the pool runs them.
/// </summary>
public class FairShareSchedulerBlockingTests
{
    private const uint X = 1001;
    private const uint Y = 1002;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly List<Exception> _faults = [];

    [Test]
    public async Task One_users_blocking_work_leaves_a_pump_for_another_users_item()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, OnOwnThread, inlineWhenIdle: false);
        Assert.That(scheduler.BlockingPumpsPerUser, Is.EqualTo(1));
        using var release = new ManualResetEventSlim();
        var started = 0;
        var scopes = new List<IDisposable>();
        for (var i = 0; i < 2; i++)
        {
            var session = scheduler.ContextFor(X);
            scopes.Add(session.EnterBlockingWork());
            session.Post(_ =>
            {
                Interlocked.Increment(ref started);
                release.Wait(Patience);
            }, null);
        }

        Assert.That(SpinWait.SpinUntil(() => Volatile.Read(ref started) >= 1, Patience), Is.True, "X's first blocking item runs");
        var yRan = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        scheduler.ContextFor(Y).Post(_ => yRan.TrySetResult(), null);

        var finished = await Task.WhenAny(yRan.Task, Task.Delay(TimeSpan.FromSeconds(5)));
        Assert.That(finished, Is.SameAs(yRan.Task), "Y's item ran while X's blocking work held a pump");
        Assert.That(Volatile.Read(ref started), Is.EqualTo(1), "X's second blocking item waits for its first");

        release.Set();
        Assert.That(SpinWait.SpinUntil(() => Volatile.Read(ref started) == 2, Patience), Is.True, "then it runs");
        scopes.ForEach(scope => scope.Dispose());
        Assert.That(_faults, Is.Empty);
    }

    [Test]
    public void A_users_blocking_work_alone_still_runs_one_item_after_another()
    {
        var scheduler = new FairShareScheduler(2, _faults.Add, OnOwnThread, inlineWhenIdle: false);
        var ran = 0;
        var session = scheduler.ContextFor(X);
        using (session.EnterBlockingWork())
        {
            for (var i = 0; i < 5; i++)
            {
                scheduler.ContextFor(X).Post(_ => Interlocked.Increment(ref ran), null);
                session.Post(_ => Interlocked.Increment(ref ran), null);
            }

            Assert.That(SpinWait.SpinUntil(() => Volatile.Read(ref ran) == 10, Patience), Is.True, "nothing was left behind");
        }

        Assert.That(_faults, Is.Empty);
    }

    private static void OnOwnThread(Action pump) => new Thread(() => pump()) { IsBackground = true }.Start();
}
