using System.Net.Sockets;
using Interceptor.Daemon.Hosting;
using Interceptor.Tests.Core.Policy;
using Microsoft.Extensions.Logging;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>The shared accept loop against a scripted accept: it never ends on an accept error, it backs off and logs sparingly.</summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class AcceptLoopTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    [Test]
    public async Task Accept_failing_with_emfile_enobufs_and_other_errors_backs_off_doubling_logs_once_and_then_dispatches()
    {
        // As .NET reports EMFILE and ENFILE (TooManyOpenSockets), ENOBUFS and ENOMEM (NoBufferSpaceAvailable); a code
        // it has no name for; and something that is not a SocketException at all.
        Exception[] failures =
        [
            new SocketException((int)SocketError.TooManyOpenSockets),
            new SocketException((int)SocketError.NoBufferSpaceAvailable),
            new SocketException((int)SocketError.SocketError),
            new SocketException(12345),
            new InvalidOperationException("something else"),
        ];
        var script = new ScriptedAccept(failures, successes: 1);
        var dispatched = new List<Socket>();
        var delays = new List<TimeSpan>();
        var clock = new ManualClock(Start);
        var log = new RecordingLogger();
        var loop = new AcceptLoop("test listener", script.AcceptAsync, dispatched.Add, log)
        {
            Delay = (delay, _) =>
            {
                delays.Add(delay);
                clock.Advance(delay);
                return Task.CompletedTask;
            },
            Time = clock,
        };

        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);
        await script.Drained.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(running.IsCompleted, Is.False, "the loop is still accepting after five failed accepts");
            Assert.That(dispatched, Has.Count.EqualTo(1), "the accept after the failures was dispatched");
            Assert.That(loop.Failures, Is.EqualTo(5));
            Assert.That(delays.Select(d => d.TotalMilliseconds), Is.EqualTo(new[] { 50d, 100, 200, 400, 800 }), "50 ms doubling");
            Assert.That(log.Lines, Has.Count.EqualTo(1), "one line for five failures within 10 s:\n" + string.Join("\n", log.Lines));
            Assert.That(log.Lines[0], Does.Contain("test listener").And.Contain("accept failed"));
        });

        await stop.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(running.IsCompletedSuccessfully, Is.True, "stopping ends the loop quietly");
        foreach (var socket in dispatched)
        {
            socket.Dispose();
        }
    }

    [Test]
    public async Task Back_off_stops_at_one_second_reports_every_ten_seconds_and_starts_over_after_a_success()
    {
        var failures = Enumerable.Range(0, 30).Select(_ => (Exception)new SocketException((int)SocketError.TooManyOpenSockets)).ToArray();
        var script = new ScriptedAccept(failures, successes: 1, thenFail: 2);
        var delays = new List<TimeSpan>();
        var clock = new ManualClock(Start);
        var log = new RecordingLogger();
        var dispatched = 0;
        var loop = new AcceptLoop("test listener", script.AcceptAsync, s => { dispatched++; s.Dispose(); }, log)
        {
            Delay = (delay, _) =>
            {
                delays.Add(delay);
                clock.Advance(delay);
                return Task.CompletedTask;
            },
            Time = clock,
        };

        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);
        await script.Drained.WaitAsync(TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(5));

        var waited = delays.Take(30).Sum(d => d.TotalSeconds);
        Assert.Multiple(() =>
        {
            Assert.That(dispatched, Is.EqualTo(1));
            Assert.That(delays.Take(30).Max(), Is.EqualTo(TimeSpan.FromSeconds(1)), "never more than 1 s");
            Assert.That(delays.Skip(30).Select(d => d.TotalMilliseconds), Is.EqualTo(new[] { 50d, 100 }), "a success starts the back-off over");

            // 30 failures over ~26 s of back-off: a line at the first, then one per 10 s at most.
            Assert.That(log.Lines, Has.Count.InRange(2, 1 + (int)Math.Ceiling(waited / 10)), string.Join("\n", log.Lines));
        });
    }

    [Test]
    public async Task A_client_that_left_before_it_was_accepted_is_skipped_without_back_off()
    {
        var script = new ScriptedAccept([new SocketException((int)SocketError.ConnectionAborted)], successes: 1);
        var delays = new List<TimeSpan>();
        var dispatched = 0;
        var loop = new AcceptLoop("test listener", script.AcceptAsync, s => { dispatched++; s.Dispose(); }, new RecordingLogger())
        {
            Delay = (delay, _) =>
            {
                delays.Add(delay);
                return Task.CompletedTask;
            },
        };

        using var stop = new CancellationTokenSource();
        var running = loop.RunAsync(stop.Token);
        await script.Drained.WaitAsync(TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Multiple(() =>
        {
            Assert.That(dispatched, Is.EqualTo(1));
            Assert.That(delays, Is.Empty);
            Assert.That(loop.Failures, Is.Zero);
        });
    }

    [Test]
    public void Connection_slots_refuse_over_the_capacity_and_free_on_return()
    {
        var slots = new ConnectionSlots(2);
        Assert.Multiple(() =>
        {
            Assert.That(slots.TryTake(), Is.True);
            Assert.That(slots.TryTake(), Is.True);
            Assert.That(slots.TryTake(), Is.False, "the third is over the cap");
        });
        slots.Return();
        Assert.That(slots.TryTake(), Is.True, "a returned slot can be taken again");
        slots.Return();
        slots.Return();
        Assert.That(() => slots.Return(), Throws.InvalidOperationException, "returned more often than taken");
    }

    /// <summary>Throws the given failures in turn, then succeeds, then fails <c>thenFail</c> times, then waits for the stop.</summary>
    private sealed class ScriptedAccept(Exception[] failures, int successes, int thenFail = 0)
    {
        private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _call;

        public Task Drained => _drained.Task;

        public async ValueTask<Socket> AcceptAsync(CancellationToken cancellationToken)
        {
            var call = _call++;
            if (call < failures.Length)
            {
                throw failures[call];
            }

            if (call < failures.Length + successes)
            {
                return new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            }

            if (call < failures.Length + successes + thenFail)
            {
                throw new SocketException((int)SocketError.TooManyOpenSockets);
            }

            _drained.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new OperationCanceledException(cancellationToken);
        }
    }
}
