using System.Collections.Concurrent;
using Interceptor.Core.Threading;
using Interceptor.Daemon.Hosting;
using NUnit.Framework;

namespace Interceptor.Tests.Core.Threading;

/// <summary>
/// A pool thread may be born of a demoted pump with its nice value; work that is not the scheduler's sets it to 0 once
/// per thread (ThreadPoolContext's items: a connection's attribution and first step, the control socket). The setter
/// records instead of calling setpriority.
/// </summary>
[NonParallelizable]
public class ThreadDemotionTests
{
    private readonly ConcurrentQueue<(int Thread, int Nice)> _calls = new();

    [SetUp]
    public void Record() => ThreadDemotion.EnableNormalizing(nice =>
    {
        _calls.Enqueue((Environment.CurrentManagedThreadId, nice));
        return true;
    });

    [TearDown]
    public void Off()
    {
        ThreadDemotion.EnableNormalizing(null);
        _calls.Clear();
    }

    [Test]
    public void A_thread_is_set_to_0_once_and_not_while_it_runs_demoted()
    {
        var thread = OnNewThread(() =>
        {
            ThreadDemotion.Mark(true);
            ThreadDemotion.EnsureNormal();
            ThreadDemotion.Mark(false);
            ThreadDemotion.EnsureNormal();
            ThreadDemotion.EnsureNormal();
        });

        Assert.That(_calls, Is.EqualTo(new[] { (thread, 0) }));
    }

    [Test]
    public void Off_nothing_is_set()
    {
        ThreadDemotion.EnableNormalizing(null);
        OnNewThread(ThreadDemotion.EnsureNormal);
        Assert.That(_calls, Is.Empty);
    }

    [Test]
    public async Task Work_posted_to_the_pool_context_runs_after_its_thread_was_set_to_0()
    {
        var ran = new TaskCompletionSource<(int Thread, bool SetBefore)>(TaskCreationOptions.RunContinuationsAsynchronously);
        ThreadPoolContext.Instance.Post(_ =>
        {
            var thread = Environment.CurrentManagedThreadId;
            ran.TrySetResult((thread, _calls.Contains((thread, 0))));
        }, null);

        var (_, setBefore) = await ran.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(setBefore, Is.True, "its thread (new to the check in this test) was set to 0 before the work ran");
    }

    [Test]
    public async Task Work_started_with_RunNormal_runs_after_its_thread_was_set_to_0()
    {
        // Refused every time, so asked on every call: a pool thread set in an earlier test cannot hide a missing call.
        ThreadDemotion.EnableNormalizing(nice =>
        {
            _calls.Enqueue((Environment.CurrentManagedThreadId, nice));
            return false;
        });
        var setBefore = new List<bool>();
        void Check()
        {
            var thread = Environment.CurrentManagedThreadId;
            setBefore.Add(_calls.Contains((thread, 0)));
        }

        _calls.Clear();
        await ThreadDemotion.RunNormal(Check);
        _calls.Clear();
        await ThreadDemotion.RunNormal(() =>
        {
            Check();
            return 1;
        });
        _calls.Clear();
        await ThreadDemotion.RunNormal(() =>
        {
            Check();
            return Task.CompletedTask;
        });
        _calls.Clear();
        await ThreadDemotion.RunNormal(() =>
        {
            Check();
            return Task.FromResult(1);
        });

        Assert.That(setBefore, Is.EqualTo(new[] { true, true, true, true }));
    }

    private static int OnNewThread(Action work)
    {
        var id = 0;
        var thread = new Thread(() =>
        {
            id = Environment.CurrentManagedThreadId;
            work();
        });
        thread.Start();
        thread.Join();
        return id;
    }
}
