using System.Diagnostics;
using System.Globalization;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// The cap on upstream connections open at once (held by sessions plus idle in the reuse cache, pool relays included),
/// sized by the descriptor budget: when idle clients give their upstream back, sessions share fewer upstream
/// connections than there are sessions, and the daemon must never open more than its budget gave them, or it would
/// reach its descriptor limit (where the runtime aborts the process). A connection takes a slot before it is opened
/// (<see cref="EnterAsync"/>) and gives it back when closed (<see cref="Release"/>; <see cref="GatedUpstreamConnector"/>
/// does both). With none free, the oldest idle session in the reuse cache is ended first
/// (<see cref="ReclaimIdle"/>), then the opener waits, and is refused with a text for the client's 4xx if none came.
/// </summary>
public sealed class UpstreamDescriptorGate : IDisposable
{
    /// <summary>How often a waiter asks the reuse cache again for an idle session to end: one kept after it started waiting.</summary>
    internal static readonly TimeSpan ReclaimInterval = TimeSpan.FromMilliseconds(500);

    private readonly SemaphoreSlim _slots;
    private int _waiting;
    private long _waits;
    private long _refusals;

    public UpstreamDescriptorGate(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _slots = new SemaphoreSlim(capacity, capacity);
    }

    /// <summary>The most upstream connections open at once (the budget's Upstreams).</summary>
    public int Capacity { get; }

    /// <summary>Upstream connections open right now (slots taken).</summary>
    public int Open => Capacity - _slots.CurrentCount;

    /// <summary>Openers waiting for a slot right now: the reuse cache keeps no idle session while there are any.</summary>
    public bool HasWaiters => Volatile.Read(ref _waiting) > 0;

    /// <summary>Openers that found no free slot and had to wait, since start.</summary>
    public long Waits => Interlocked.Read(ref _waits);

    /// <summary>Openers refused because no slot came within their wait, since start.</summary>
    public long Refusals => Interlocked.Read(ref _refusals);

    /// <summary>
    /// Ends one idle session of the reuse cache (its slot frees when it is disposed); false when none is idle. Set once,
    /// by the cache that opens through this gate.
    /// </summary>
    public Func<bool>? ReclaimIdle { get; set; }

    /// <summary>
    /// Takes a slot: at once when one is free (the semaphore's uncontended path), else after ending an idle session or waiting up to
    /// <paramref name="timeout"/>.
    /// </summary>
    /// <exception cref="UpstreamDescriptorsExhaustedException">No slot came within <paramref name="timeout"/>.</exception>
    public async Task EnterAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_slots.Wait(0, CancellationToken.None))
        {
            return;
        }

        Interlocked.Increment(ref _waits);
        Interlocked.Increment(ref _waiting);
        try
        {
            var started = Stopwatch.GetTimestamp();
            while (true)
            {
                ReclaimIdle?.Invoke();
                var left = timeout - Stopwatch.GetElapsedTime(started);
                if (left <= TimeSpan.Zero)
                {
                    break;
                }

                if (await _slots.WaitAsync(left < ReclaimInterval ? left : ReclaimInterval, cancellationToken))
                {
                    return;
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        Interlocked.Increment(ref _refusals);
        throw new UpstreamDescriptorsExhaustedException(string.Create(CultureInfo.InvariantCulture,
            $"no descriptor free for another upstream connection ({Capacity} open, the descriptor budget's cap; LimitNOFILE)"));
    }

    /// <summary>Gives a slot back; once per successful <see cref="EnterAsync"/>.</summary>
    public void Release()
    {
        try
        {
            _slots.Release();
        }
        catch (ObjectDisposedException)
        {
            // Shutdown: a session that outlived the drain closes its upstream after the listener disposed the gate;
            // nothing waits for the slot any more, and throwing would skip the rest of that session's cleanup.
        }
    }

    public void Dispose() => _slots.Dispose();
}
