namespace Interceptor.Daemon.Fairness;

/// <summary>The users' turns: which item a pump takes next, and each user's count of sessions in the scheduler.</summary>
public sealed partial class FairShareScheduler
{
    // A session's work enters the scheduler: queued, or run here. Its user's load counts sessions, so a session's own
    // hand-off (a yield, BlockingWork's move to a pump, posted from inside its running step) is not a second one. Under
    // the lock.
    private void Entered(UserSynchronizationContext context)
    {
        if (context.InScheduler++ == 0)
        {
            _load.Enter(context.Uid);
        }
    }

    // An item of the session has run. Under the lock.
    private void Left(UserSynchronizationContext context)
    {
        if (--context.InScheduler == 0)
        {
            _load.Leave(context.Uid);
        }
    }

    // A pump's item of the session has run; a blocking one frees its user's share of the pumps. Under the lock.
    private void Left(UserSynchronizationContext context, bool blocking)
    {
        if (blocking && --_blockingRunning[context.Uid] == 0)
        {
            _blockingRunning.Remove(context.Uid);
        }

        Left(context);
    }

    // Round-robin: the uid at the front of the turns gives one item and goes to the back if it has more. A uid whose
    // next item is blocking work while it already blocks BlockingPumpsPerUser pumps passes its turn: a customer's held
    // messages (each fsync'd on a pump) must not take every pump while other users' work waits.
    // blocking: what the cap was judged by (read once: the session's flag changes outside the lock), counted by the
    // pump until the item has run.
    private bool TryTakeNext(out WorkItem item, out bool blocking, out long heldUntil)
    {
        heldUntil = long.MaxValue;
        for (var turns = _turns.Count; turns > 0; turns--)
        {
            var uid = _turns.Dequeue();
            var queue = _queues[uid];
            blocking = queue.Peek().Context.InBlockingWork;
            if (blocking && _blockingRunning.GetValueOrDefault(uid) >= BlockingPumpsPerUser)
            {
                _turns.Enqueue(uid);
                continue;
            }

            if (IsHeldBack(uid, blocking, out var until))
            {
                heldUntil = Math.Min(heldUntil, until);
                _turns.Enqueue(uid);
                continue;
            }

            item = Take(uid, queue);
            return true;
        }

        item = default;
        blocking = false;
        return false;
    }

    private WorkItem Take(uint uid, Queue<WorkItem> queue)
    {
        var item = queue.Dequeue();
        if (queue.Count > 0)
        {
            _turns.Enqueue(uid);
        }
        else
        {
            _queues.Remove(uid);
            if (_spare.Count < SpareQueues)
            {
                // Dequeue cleared the slot it took: the queue keeps no reference to a finished item.
                _spare.Push(queue);
            }
        }

        return item;
    }
}
