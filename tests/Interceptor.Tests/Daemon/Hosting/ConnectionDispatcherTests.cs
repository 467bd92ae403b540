using System.Net.Sockets;
using Interceptor.Daemon.Hosting;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>
/// The one connection dispatcher of every listener: a connection is counted before it runs and uncounted when it ends,
/// never more at once than the cap, so the count shown in `status`, metrics and systemd's STATUS= cannot drift.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class ConnectionDispatcherTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static Socket NewSocket() => new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    [Test]
    public async Task A_connection_is_registered_before_it_runs_and_thousands_of_instant_ones_leave_the_count_at_zero()
    {
        const int Connections = 20_000;
        const int Cap = 64;
        var unregisteredWhileRunning = 0;
        var overTheCap = 0;
        var ended = 0;
        var allEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ConnectionDispatcher? dispatcher = null;
        dispatcher = new ConnectionDispatcher("test", Cap, (_, _, _) =>
        {
            // Ends at once, as a refused connection does: the race that left stale entries behind.
            var active = dispatcher!.Active;
            if (active < 1)
            {
                Interlocked.Increment(ref unregisteredWhileRunning);
            }

            if (active > Cap)
            {
                Interlocked.Increment(ref overTheCap);
            }

            if (Interlocked.Increment(ref ended) == Connections)
            {
                allEnded.TrySetResult();
            }

            return Task.CompletedTask;
        }, new RecordingLogger());

        // Several accept loops at once, as the listener has one per address; each waits for a free place (at most the cap
        // of sockets open at once).
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < Connections / 4; i++)
            {
                var socket = NewSocket();
                while (!dispatcher.TryDispatch(socket))
                {
                    await Task.Yield();
                }
            }
        })));
        await allEnded.Task.WaitAsync(Timeout);
        Assert.That(await dispatcher.DrainAsync(Timeout, TimeSpan.Zero), Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(unregisteredWhileRunning, Is.Zero, "every connection was counted while it ran");
            Assert.That(overTheCap, Is.Zero, "never more than the cap at once");
            Assert.That(dispatcher.Active, Is.Zero, "and uncounted when it ended");
        });
    }

    [Test]
    public async Task Over_the_cap_a_connection_is_not_taken_and_an_ended_one_frees_its_place_and_disposes_its_socket()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        using var dispatcher = new ConnectionDispatcher("test", 2, async (_, _, _) =>
        {
            Interlocked.Increment(ref started);
            await release.Task;
        }, new RecordingLogger());
        var first = NewSocket();
        using var refused = NewSocket();

        Assert.Multiple(() =>
        {
            Assert.That(dispatcher.TryDispatch(first), Is.True);
            Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True);
            Assert.That(dispatcher.Active, Is.EqualTo(2), "counted as soon as dispatched");
            Assert.That(dispatcher.TryDispatch(refused), Is.False, "the third is over the cap of 2");
        });
        Assert.That(refused.SafeHandle.IsClosed, Is.False, "a socket over the cap is left to the caller (to refuse)");

        release.SetResult();
        await WaitUntilAsync(() => dispatcher.Active == 0);
        Assert.Multiple(() =>
        {
            Assert.That(started, Is.EqualTo(2));
            Assert.That(first.SafeHandle.IsClosed, Is.True, "the dispatcher closed the ended connection's socket");
            Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True, "the freed places take connections again");
            Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True);
        });
    }

    [Test]
    public async Task A_connection_that_throws_is_logged_uncounted_and_its_place_freed()
    {
        var log = new RecordingLogger();
        using var dispatcher = new ConnectionDispatcher("test listener", 1, (_, _, _) => throw new InvalidOperationException("broken"), log);

        Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True);
        await WaitUntilAsync(() => dispatcher.Active == 0 && log.Lines.Count == 1);
        Assert.Multiple(() =>
        {
            Assert.That(log.Lines[0], Does.Contain("test listener").And.Contain("connection 1 failed"));
            Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True, "its place is free again");
        });
    }

    [Test]
    public async Task A_reservation_waits_for_a_free_place_and_a_cancelled_one_gives_it_back()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var dispatcher = new ConnectionDispatcher("test", 1, (_, _, _) => release.Task, new RecordingLogger());
        await dispatcher.ReserveAsync(CancellationToken.None);
        dispatcher.DispatchReserved(NewSocket());

        var waiting = dispatcher.ReserveAsync(CancellationToken.None);
        await Task.Delay(100);
        Assert.That(waiting.IsCompleted, Is.False, "no place while the one connection runs");
        release.SetResult();
        await waiting.WaitAsync(Timeout);

        dispatcher.CancelReservation();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await dispatcher.ReserveAsync(cancel.Token).WaitAsync(Timeout);
        Assert.That(dispatcher.Active, Is.Zero);
    }

    [Test]
    public async Task Draining_waits_the_grace_then_aborts_what_still_runs()
    {
        var sawAbort = false;
        using var dispatcher = new ConnectionDispatcher("test", 4, async (_, _, aborted) =>
        {
            try
            {
                await Task.Delay(System.Threading.Timeout.Infinite, aborted);
            }
            catch (OperationCanceledException)
            {
                sawAbort = true;
            }
        }, new RecordingLogger());
        Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True);
        await WaitUntilAsync(() => dispatcher.Active == 1);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var left = await dispatcher.DrainAsync(TimeSpan.FromMilliseconds(300), Timeout);
        Assert.Multiple(() =>
        {
            Assert.That(left, Is.Zero, "the aborted connection ended");
            Assert.That(sawAbort, Is.True);
            Assert.That(watch.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(250)), "not aborted before the grace");
            Assert.That(dispatcher.Aborted.IsCancellationRequested, Is.True);
        });
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "timed out waiting");
            await Task.Delay(10);
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task Serve_starts_on_the_pool_unless_told_to_start_on_the_accepting_thread(bool onAcceptingThread)
    {
        var started = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var dispatcher = new ConnectionDispatcher("test", 4, (_, _, _) =>
        {
            started.TrySetResult(Environment.CurrentManagedThreadId);
            return Task.CompletedTask;
        }, new RecordingLogger(), onAcceptingThread);

        // A thread of our own, so "the pool" and "here" cannot be the same thread by chance.
        var accepting = 0;
        var thread = new Thread(() =>
        {
            accepting = Environment.CurrentManagedThreadId;
            Assert.That(dispatcher.TryDispatch(NewSocket()), Is.True);
        });
        thread.Start();
        thread.Join();

        var servedOn = await started.Task.WaitAsync(Timeout);
        if (onAcceptingThread)
        {
            Assert.That(servedOn, Is.EqualTo(accepting), "the SMTP listener's serve starts where the accept completed");
        }
        else
        {
            Assert.That(servedOn, Is.Not.EqualTo(accepting), "every other listener's connection starts on the pool");
        }
    }
}
