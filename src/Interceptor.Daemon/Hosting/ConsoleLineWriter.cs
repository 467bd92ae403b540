using System.Diagnostics;
using System.Text;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// Writes log lines to standard output from a thread of its own, in batches. .NET's console logger also writes from a
/// thread of its own, but wakes it for every line: under load that was two context switches per relayed message (the
/// logger's thread, and the session's thread preempted by it) and a fifth of the daemon's CPU on this kind of host
/// (README → Performance). Here a line after a quiet spell is written at once; while lines come closer together than
/// <see cref="Linger"/>, the thread waits that long after each write, and lines logged meanwhile go out together
/// without waking anyone.
/// </summary>
/// <remarks>
/// Nothing is dropped: when <see cref="MaxPendingChars"/> are waiting (standard output blocked, say journald stuck),
/// loggers wait for the thread, as the console logger's full queue makes them. Only after a disposal that gave up on a
/// standard output blocked for good are later lines dropped. Lines go through <see cref="Console.Out"/>,
/// so they never interleave with what a verb prints there.
/// </remarks>
public sealed class ConsoleLineWriter : IDisposable
{
    /// <summary>How long the thread waits after a write before it writes what came meanwhile.</summary>
    public static readonly TimeSpan Linger = TimeSpan.FromMilliseconds(5);

    /// <summary>About 1,000 transaction lines; the console logger queued up to 2,500 lines.</summary>
    public const int MaxPendingChars = 1 << 20;

    // Monitor's wait and pulse: System.Threading.Lock has neither.
    private readonly object _gate = new();
    private readonly Func<TextWriter> _output;
    private readonly TimeSpan _linger;
    private readonly TimeSpan _disposeWait;
    private readonly int _maxPending;
    private readonly Thread _thread;
    private StringBuilder _pending = new();
    private StringBuilder _writing = new();
    private bool _threadWaiting;
    private bool _threadLingering;
    private bool _stopping;
    private bool _stopped;
    private bool _abandoned;
    private long _batches;

    /// <param name="output">Where lines go; read for each batch (a verb or test may replace Console.Out).</param>
    /// <param name="disposeWait">How long disposal waits for the thread to write what is left (5 s; shorter in tests).</param>
    public ConsoleLineWriter(Func<TextWriter>? output = null, TimeSpan? linger = null, int maxPendingChars = MaxPendingChars, TimeSpan? disposeWait = null)
    {
        _disposeWait = disposeWait ?? TimeSpan.FromSeconds(5);
        _output = output ?? (() => Console.Out);
        _linger = linger ?? Linger;
        _maxPending = maxPendingChars;
        _thread = new Thread(Run) { IsBackground = true, Name = "log writer" };
        _thread.Start();
    }

    /// <summary>Batches written (tests read it).</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Queues a formatted line (or lines); returns at once unless <see cref="MaxPendingChars"/> are waiting.</summary>
    public void Append(StringBuilder text)
    {
        lock (_gate)
        {
            // A full buffer waits for the thread's next batch (nothing lost; the thread wakes waiters after each swap);
            // one line longer than the cap still goes. A thread lingering after its write is woken once, by the first
            // logger to find the buffer full: its batch is as big as it gets.
            while (!_stopped && _pending.Length > 0 && _pending.Length + text.Length > _maxPending)
            {
                if (_threadLingering)
                {
                    _threadLingering = false;
                    Monitor.PulseAll(_gate);
                }

                Monitor.Wait(_gate);
            }

            if (!_stopped)
            {
                _pending.Append(text);
                if (_threadWaiting)
                {
                    _threadWaiting = false;
                    Monitor.Pulse(_gate);
                }

                return;
            }

            if (_abandoned)
            {
                // Standard output never took the last batch: writing would block this logger on its lock for good.
                return;
            }
        }

        // The thread has ended (disposal at exit): the caller writes its line itself, outside the lock.
        Write(text);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }

        // The thread writes what is left first; a standard output blocked for good must not hold the exit forever,
        // nor keep loggers waiting for room. It holds Console.Out's lock in its write, so a logger writing for itself
        // would block there too: from then on lines are dropped (nothing could take them).
        if (!_thread.Join(_disposeWait))
        {
            lock (_gate)
            {
                _stopped = true;
                _abandoned = true;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private void Run()
    {
        // Not a helper thread that yields on waking (Core's HelperThreads): its first write sets up .NET's console, whose
        // signal-handling thread (a native one, started from here) would inherit SCHED_BATCH.
        while (true)
        {
            // Lines closer together than the linger: batch them. A line after a longer quiet spell is written alone and
            // the thread waits for the next without a timed wake-up (a daemon logging a line a second stays asleep).
            var busy = true;
            lock (_gate)
            {
                if (_pending.Length == 0 && !_stopping)
                {
                    var waitBegan = Stopwatch.GetTimestamp();
                    while (_pending.Length == 0 && !_stopping)
                    {
                        _threadWaiting = true;
                        Monitor.Wait(_gate);
                    }

                    busy = Stopwatch.GetElapsedTime(waitBegan) < _linger;
                }

                _threadWaiting = false;
                (_pending, _writing) = (_writing, _pending);
                if (_pending.Length == 0 && _writing.Length == 0 && _stopping)
                {
                    _stopped = true;
                    Monitor.PulseAll(_gate);
                    return;
                }

                // Loggers waiting for room may go on.
                Monitor.PulseAll(_gate);
            }

            Write(_writing);
            _writing.Clear();
            if (_writing.Capacity > 4 * _maxPending)
            {
                _writing = new StringBuilder();
            }

            Interlocked.Increment(ref _batches);
            lock (_gate)
            {
                if (busy && !_stopping && _pending.Length < _maxPending / 2)
                {
                    // Lines logged meanwhile wait for the next batch without waking this thread (loggers pulse only a
                    // thread waiting for a first line); a full buffer or the disposal ends the wait early.
                    _threadLingering = true;
                    Monitor.Wait(_gate, _linger);
                    _threadLingering = false;
                }
            }
        }
    }

    private void Write(StringBuilder batch)
    {
        try
        {
            var output = _output();
            output.Write(batch);
            output.Flush();
        }
        catch (IOException)
        {
            // Standard output is gone (the journal's stream closed): nothing else can take the lines.
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
