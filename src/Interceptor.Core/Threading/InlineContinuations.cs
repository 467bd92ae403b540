namespace Interceptor.Core.Threading;

/// <summary>
/// Marks the code that completes work for sessions while holding nothing (no lock, no half-updated state), so that a
/// session's continuation may run right there instead of waking another thread: a session being started, or (one a
/// batch, once the batch is done: <see cref="KeepOne"/>) a write's completion on the store's writer. A
/// synchronization context asks <see cref="Allowed"/> in its Post. Anywhere else a Post may come from inside a lock (a
/// task completed under it) or from a thread with work of its own (the store's writer, outside KeepOne), and the
/// continuation must be queued.
/// </summary>
public static class InlineContinuations
{
    [ThreadStatic]
    private static int t_depth;

    /// <summary>Whether the current thread said it holds nothing (see <see cref="Allow"/>).</summary>
    public static bool Allowed => t_depth > 0;

    /// <summary>Until the scope is disposed, continuations posted from this thread may run on it.</summary>
    public static Scope Allow()
    {
        t_depth++;
        return default;
    }

    public readonly struct Scope : IDisposable
    {
        public void Dispose() => t_depth--;
    }

    // KeepOne's state: whether this thread keeps a continuation now, and the one it kept.
    [ThreadStatic]
    private static bool t_keeping;

    [ThreadStatic]
    private static Action? t_kept;

    /// <summary>Whether a continuation posted now may be kept for this thread (see <see cref="KeepOne"/>): one is not yet.</summary>
    public static bool CanKeep => t_keeping && t_kept is null;

    /// <summary>Whether this thread kept one (it runs at <see cref="RunKept"/>).</summary>
    public static bool HasKept => t_kept is not null;

    /// <summary>
    /// Until <see cref="RunKept"/> (or the scope's end), one continuation posted from this thread that could run
    /// on it is kept instead of run at once, and runs there when the thread's own work is done: the store's writer
    /// completing a batch's writes resumes one session's step after all of them, never in the middle of them, and only one
    /// a batch, since every other user's next commit waits for the writer meanwhile. Nothing else runs here.
    /// </summary>
    public static KeepScope KeepOne()
    {
        // Nested, the inner scope would drop what the outer one kept (its session would never run again).
        if (t_keeping)
        {
            throw new InvalidOperationException("this thread already keeps a continuation (InlineContinuations.KeepOne is not nested)");
        }

        t_keeping = true;
        t_kept = null;
        return default;
    }

    /// <summary>Keeps <paramref name="run"/> for the scope's end; false when none may be kept (no scope, or one already is).</summary>
    public static bool TryKeep(Action run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (!CanKeep)
        {
            return false;
        }

        t_kept = run;
        return true;
    }

    /// <summary>Ends this thread's keeping and runs what was kept; false if nothing was. Whatever the kept work posts is not
    /// kept.</summary>
    public static bool RunKept()
    {
        var kept = t_kept;
        t_kept = null;
        t_keeping = false;
        kept?.Invoke();
        return kept is not null;
    }

    public readonly struct KeepScope : IDisposable
    {
        /// <summary>A kept continuation is never dropped: it runs here if RunKept was not called (an exception on the way).</summary>
        public void Dispose() => RunKept();
    }
}
