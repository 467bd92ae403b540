namespace Interceptor.Core.Threading;

/// <summary>
/// Marks the code that completes work for sessions while holding nothing (no lock, no half-updated state), so that a
/// session's continuation may run right there instead of waking another thread: a session being started. A
/// synchronization context asks <see cref="Allowed"/> in its Post. Anywhere else a Post may come from inside a lock (a
/// task completed under it) or from a thread with work of its own (the store's writer), and the continuation must be
/// queued.
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
}
