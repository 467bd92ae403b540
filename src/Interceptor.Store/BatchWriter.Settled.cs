using Interceptor.Core.Policy;
using Interceptor.Core.Threading;

namespace Interceptor.Store;

/// <summary>A batch's writes once it is committed (or failed): who is told, and where their awaiters resume.</summary>
internal sealed partial class BatchWriter
{
    private readonly record struct Settled(WriteOp[]? Ops, StoreUnavailableException? Failure)
    {
        /// <param name="onWriter">Run by the writer's thread, between batches. A caller that committed its own write (a
        /// session's step, BatchWriter.Here.cs) keeps nothing: a kept step would run nested in its own.</param>
        public void Run(bool onWriter = false)
        {
            // The ops that resume elsewhere first: the others run a session's step here, and the rest of the batch (other
            // users' commits, on disk already) must not wait behind it. One step at most runs here, once every op of the
            // batch is answered; the others go on on the pool: a user alone sending DATA in many sessions at once would
            // otherwise hold this thread (the writer's) for a step of each in a row, and every other commit with it
            // (attack review). That one is a light user's step posted back to its context and kept (its scheduler
            // decides, InlineContinuations.KeepOne), or else the step of a user alone.
            if (!onWriter)
            {
                SettleThoseResumingElsewhere();
                SettleThoseResumingHere(ranHere: false);
                return;
            }

            using var keep = InlineContinuations.KeepOne();
            SettleThoseResumingElsewhere();
            var kept = InlineContinuations.HasKept;
            if (kept)
            {
                // Before the kept step: a user alone's steps go to the pool, not behind it.
                SettleThoseResumingHere(ranHere: true);
            }

            InlineContinuations.RunKept();
            if (!kept)
            {
                SettleThoseResumingHere(ranHere: false);
            }
        }

        // A user alone's steps: the first runs here unless a step already did (or will), the rest on the pool.
        private void SettleThoseResumingHere(bool ranHere)
        {
            foreach (var op in Ops ?? [])
            {
                if (!op.ResumesWhereCompleted)
                {
                    continue;
                }

                if (ranHere)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static s => s.Settled.Settle(s.Op), (Settled: this, Op: op), preferLocal: false);
                }
                else
                {
                    ranHere = true;
                    Settle(op);
                }
            }
        }

        private void SettleThoseResumingElsewhere()
        {
            foreach (var op in Ops ?? [])
            {
                if (!op.ResumesWhereCompleted)
                {
                    Settle(op);
                }
            }
        }

        private void Settle(WriteOp op)
        {
            if (Failure is null)
            {
                op.Complete();
            }
            else
            {
                op.Fail(Failure);
            }
        }
    }
}
