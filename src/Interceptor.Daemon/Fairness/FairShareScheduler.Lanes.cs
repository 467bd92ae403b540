using Interceptor.Core.Threading;

namespace Interceptor.Daemon.Fairness;

/// <summary>
/// A user alone runs outside the scheduler. Fairness has a price on every step (each await captures the session's
/// context, each continuation is posted, counted and run through it: 12–14% of the daemon's CPU per message against the
/// same build with no context, README → Performance), and it buys nothing while one user is the only one with work:
/// there is nobody to be fair to. So while no other user's work has entered the scheduler for <see cref="AloneAfter"/>,
/// that user's sessions run their steps with no context, where their I/O completes (a socket thread), as an event loop
/// would. After every step a session's loop asks (<see cref="GoOnHere"/>, through its lane), and once another user
/// shows up it goes back to its turn before its next step, queued for a pump (<see cref="Queue"/>): from then on the
/// users' turns, the light users' steps beside the pumps and the flood's demotion apply as before.
/// </summary>
/// <remarks>
/// What the newcomer waits for is the steps the socket thread is already running when its own work arrives (a batch of
/// ready sessions of the user alone), once: its work enters the scheduler, and the user alone loses the mark before its
/// sessions' next steps. A step of a session outside the scheduler that uses up its slice (a storm of pipelined
/// commands) yields into its user's turn, never to the thread pool, and a user whose sessions used up
/// <see cref="SlicesToStayInTurns"/> slices in one <see cref="LoadWindow"/> is not alone: so the batch is made of ordinary
/// steps, not of slices. Many sessions at once are no storm by themselves: a site's bulk mailer keeps 20 sessions in
/// lock-step, each step a few microseconds, and the scheduler's flood mark (<see cref="FloodSessions"/> sessions in it at
/// once) kept such a user in its turns for good, at 19% more CPU per message (README → Performance).
/// </remarks>
public sealed partial class FairShareScheduler
{
    /// <summary>No other user's work has entered the scheduler for this long: the user whose work last entered is alone.</summary>
    public static readonly TimeSpan AloneAfter = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Slices a user's sessions may use up in one <see cref="LoadWindow"/> and still run outside the scheduler while
    /// alone. A storm of pipelined commands uses one per session every millisecond; lock-step mail only now and then, when
    /// a loaded machine preempts a step.
    /// </summary>
    public const int SlicesToStayInTurns = 8;

    /// <summary>
    /// After a step of the session: true to go on where it runs. While its user is alone that is anywhere the session
    /// runs under its own context or none, and the context is left (the next awaits capture none); otherwise only under
    /// its own context, where the scheduler already runs it. Never in blocking work (its items stay on the pumps), nor
    /// when the scheduler does not run items where posted (tests that drive the pumps by hand).
    /// </summary>
    internal bool GoOnHere(UserSynchronizationContext context)
    {
        var current = SynchronizationContext.Current;
        if (current is not null && !ReferenceEquals(current, context))
        {
            // A continuation that ran inside another user's item (a task it completed): back to this user's own turn.
            return false;
        }

        if (InlineWhenIdle && !context.InBlockingWork && IsAlone(context.Uid))
        {
            if (current is not null)
            {
                // Inside the session's own item: Run puts the thread's context back when the item ends.
                SynchronizationContext.SetSynchronizationContext(null);
            }

            return true;
        }

        return current is not null;
    }

    /// <summary>
    /// A session of a user alone may start on the calling thread, outside its context: where an item posted now would
    /// run here anyway (a socket thread, or a poster holding nothing), with no context of another's to leave.
    /// </summary>
    internal bool MayStartHere(UserSynchronizationContext context) =>
        SynchronizationContext.Current is null && InlineWhenIdle && MayRunHere() && IsAlone(context.Uid);

    /// <summary>A loop of one of the uid's sessions used up its slice (<see cref="IStepLane.SliceUsed"/>).</summary>
    internal void SliceUsed(uint uid)
    {
        lock (_lock)
        {
            _load.SliceUsed(uid);
        }
    }

    private bool IsAlone(uint uid)
    {
        lock (_lock)
        {
            // Not a storm (sessions that keep using up their slices): run outside, its steps would hold the socket
            // threads a slice each, and a newcomer would wait behind all of them for its first step. In its turns, the
            // newcomer's step runs beside them.
            return _load.IsAlone(uid, AloneAfter) && !_load.IsSlicing(uid);
        }
    }
}
