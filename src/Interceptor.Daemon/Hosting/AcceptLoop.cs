using System.Net.Sockets;
using Interceptor.Core.Threading;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// The accept loop every listener of the daemon shares (intercept, control, metrics). It ends only when stopped:
/// an accept that fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) or for any other reason is retried
/// after a back-off of 50 ms doubling to 1 s, with one log line per 10 s at most; the kernel keeps the waiting
/// connections in the backlog meanwhile. Each accepted socket goes to <c>dispatch</c>: the listener's
/// <see cref="ConnectionDispatcher"/>, which registers it under the listener's cap before anything of it runs (or the
/// listener refuses it).
/// </summary>
public sealed class AcceptLoop(string name, Func<CancellationToken, ValueTask<Socket>> accept, Action<Socket> dispatch, ILogger logger)
{
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(50);
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan ReportInterval = TimeSpan.FromSeconds(10);

    /// <summary>Waits between failed accepts; replaced in tests.</summary>
    internal Func<TimeSpan, CancellationToken, Task> Delay { get; init; } = Task.Delay;

    internal TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Accepts that failed, in all; for tests and diagnostics.</summary>
    public long Failures { get; private set; }

    /// <summary>Runs until <paramref name="stop"/> is cancelled or the listening socket is disposed.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var backoff = FirstBackoff;
        var report = new LogThrottle(ReportInterval, Time);
        var budget = ThreadBudget.Start();
        while (!stop.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                // A backlog kept full (a connection flood, refused over the cap here) never makes the accept wait, and
                // the accept's completion runs on a socket thread: give it up after a slice (see ThreadBudget).
                var accepting = accept(stop);
                var waited = !accepting.IsCompleted;
                accepted = await accepting;
                await budget.AfterStepAsync(waited);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                // That one client left before we took it; nothing is wrong with the listener.
                continue;
            }
#pragma warning disable CA1031 // whatever failed, the listener must go on: a listener that stops is a daemon that stops relaying
            catch (Exception e)
#pragma warning restore CA1031
            {
                Failures++;
                if (report.TryReport(out var count, out var span))
                {
                    logger.AcceptFailing(name, count, span.TotalSeconds, Describe(e), MaxBackoff.TotalMilliseconds);
                }

                try
                {
                    await Delay(backoff, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                continue;
            }

            backoff = FirstBackoff;
            try
            {
                dispatch(accepted);
            }
#pragma warning disable CA1031 // a bug in registering one connection must not end the listener
            catch (Exception e)
#pragma warning restore CA1031
            {
                logger.RegistrationFailed(e, name);
                accepted.Dispose();
            }
        }
    }

    private static string Describe(Exception e) =>
        e is SocketException s ? $"{s.Message} ({s.SocketErrorCode})" : $"{e.GetType().Name}: {e.Message}";
}

/// <summary>A listener's cap: slots taken when a connection is registered and given back when it ends.</summary>
public sealed class ConnectionSlots(int capacity)
{
    private int _used;

    public int Capacity { get; } = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "a cap must be positive");

    public int InUse => Volatile.Read(ref _used);

    public bool TryTake()
    {
        while (true)
        {
            var used = Volatile.Read(ref _used);
            if (used >= Capacity)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _used, used + 1, used) == used)
            {
                return true;
            }
        }
    }

    public void Return()
    {
        if (Interlocked.Decrement(ref _used) < 0)
        {
            throw new InvalidOperationException("a connection slot was returned twice");
        }
    }
}

/// <summary>
/// At most one report per interval for something that can happen thousands of times a second (a failing accept, a
/// connection over a cap): the first occurrence is reported at once, later ones are counted into the next report.
/// </summary>
public sealed class LogThrottle(TimeSpan interval, TimeProvider time)
{
    private readonly Lock _lock = new();
    private long _count;
    private DateTimeOffset? _windowStart;
    private DateTimeOffset _lastReport = DateTimeOffset.MinValue;

    /// <summary>Counts one occurrence; true when it is time to report, with the occurrences since the last report.</summary>
    public bool TryReport(out long count, out TimeSpan span)
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            _windowStart ??= now;
            _count++;
            if (now - _lastReport < interval)
            {
                count = 0;
                span = TimeSpan.Zero;
                return false;
            }

            count = _count;
            span = now - _windowStart.Value;
            _count = 0;
            _windowStart = null;
            _lastReport = now;
            return true;
        }
    }
}
