using System.Collections.Concurrent;

namespace Interceptor.Core.Policy;

/// <summary>Puts a UID into (or takes it out of) the kernel's suspended set: nft in production.</summary>
public interface IKernelSuspension
{
    Task SuspendAsync(uint uid, CancellationToken cancellationToken);
    Task UnsuspendAsync(uint uid, CancellationToken cancellationToken);
}

/// <summary>Tells the admin's panel about a suspension (the configured Alerts.Command).</summary>
public interface ISuspensionAlert
{
    Task NotifyAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken);
}

/// <summary>
/// The suspended users: in the store (survives restarts), in the kernel (their port-25 connections are
/// rejected before reaching us), and in memory (sessions already open are refused at their next MAIL).
/// </summary>
public sealed class SuspensionRegistry(IStateStore store, IKernelSuspension kernel, ISuspensionAlert alert)
{
    private readonly ConcurrentDictionary<uint, Suspension> _suspended = new();
    private int _kernelChangesInFlight;

    /// <summary>
    /// Suspension.Action=Hold: true for the suspensions whose user's mail is held instead of refused (the automatic
    /// ones). Those stay out of the kernel's set and out of <see cref="Refuses"/>. Null: every suspension refuses.
    /// </summary>
    public Func<Suspension, bool>? HoldsInstead { get; init; }

    public bool IsSuspended(uint uid, out Suspension? suspension) => _suspended.TryGetValue(uid, out suspension);

    /// <summary>
    /// Suspensions and lifts changed here but not yet in the kernel (the store, then nft, still to come): while above
    /// zero the kernel's set may lag this registry, and a table check should not call that a change made behind our back.
    /// </summary>
    public int KernelChangesInFlight => Volatile.Read(ref _kernelChangesInFlight);

    /// <summary>Suspended and refused (in the kernel, and at connect and MAIL); false for a user whose mail is held.</summary>
    public bool Refuses(uint uid, out Suspension? suspension) => IsSuspended(uid, out suspension) && !Holds(suspension!);

    /// <summary>Suspended with Suspension.Action=Hold: the user's messages are held for review.</summary>
    public bool HoldsMailOf(uint uid, out Suspension? suspension) => IsSuspended(uid, out suspension) && Holds(suspension!);

    public IReadOnlyList<Suspension> All => [.. _suspended.Values.OrderBy(s => s.Since)];

    /// <summary>The suspensions the kernel refuses (all of them unless mail of some is held): the table's suspended set.</summary>
    public IReadOnlyList<Suspension> KernelRefused => [.. All.Where(s => !Holds(s))];

    private bool Holds(Suspension suspension) => HoldsInstead?.Invoke(suspension) ?? false;

    /// <summary>Loads the stored suspensions (the caller renders them into the table it installs).</summary>
    public async Task<IReadOnlyList<Suspension>> LoadAsync(CancellationToken cancellationToken)
    {
        var stored = await store.LoadSuspensionsAsync(cancellationToken);
        foreach (var suspension in stored)
        {
            _suspended[suspension.Uid] = suspension;
        }

        return stored;
    }

    /// <summary>
    /// Suspends a user: stored first (a restart re-applies it), then the kernel, then the alert.
    /// False when the user was already suspended (nothing changes, no second alert).
    /// </summary>
    public async Task<bool> SuspendAsync(Suspension suspension, IReadOnlyDictionary<string, string> counts, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _kernelChangesInFlight);
        try
        {
            if (!_suspended.TryAdd(suspension.Uid, suspension))
            {
                return false;
            }

            // Already refused in memory from here on (fail closed), even if the store or nft fails below.
            await store.SaveSuspensionAsync(suspension, cancellationToken);
            if (!Holds(suspension))
            {
                await kernel.SuspendAsync(suspension.Uid, cancellationToken);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _kernelChangesInFlight);
        }

        await alert.NotifyAsync(suspension, counts, cancellationToken);
        return true;
    }

    /// <summary>Lifts a suspension; false when the user was not suspended.</summary>
    public async Task<bool> UnsuspendAsync(uint uid, CancellationToken cancellationToken)
    {
        // Memory first: the table watchdog restores the set from this registry, so it must never see the
        // kernel already without the uid while we still list it (it would put the suspension back).
        Interlocked.Increment(ref _kernelChangesInFlight);
        try
        {
            var inMemory = _suspended.TryRemove(uid, out _);
            var stored = await store.RemoveSuspensionAsync(uid, cancellationToken);
            await kernel.UnsuspendAsync(uid, cancellationToken);
            return inMemory || stored;
        }
        finally
        {
            Interlocked.Decrement(ref _kernelChangesInFlight);
        }
    }
}
