using System.Runtime.CompilerServices;
using Interceptor.Core.Threading;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// Keeps whatever is not a session's step off the threads that poll the sockets. The daemon runs socket completions on
/// the socket engine's own threads (<see cref="SocketThreads"/>), so that a session's next step runs where its bytes
/// arrived, with no hop to another thread. Code that runs without a synchronization context would then run there too
/// after each of its socket awaits: the control socket's verbs reading the store, the release of held messages reading
/// their files, DNSBL checks. Under this context every continuation goes to the thread pool instead, as it does when
/// completions are not inlined; a session's steps run under its user's context
/// (<see cref="Fairness.UserSynchronizationContext"/>).
/// </summary>
public sealed class ThreadPoolContext : SynchronizationContext
{
    public static readonly ThreadPoolContext Instance = new();

    private ThreadPoolContext()
    {
    }

    /// <summary>
    /// Continues the calling async method on the thread pool, under this context (so do its later awaits). The
    /// caller's own context is restored for its caller when the method first yields, as for any async method.
    /// </summary>
    public static YieldAwaitable SwitchTo()
    {
        SetSynchronizationContext(Instance);
        return Task.Yield();
    }

    public override void Post(SendOrPostCallback d, object? state) =>
        ThreadPool.UnsafeQueueUserWorkItem(static work => work.Run(), new Work(d, state), preferLocal: false);

    public override SynchronizationContext CreateCopy() => this;

    private sealed record Work(SendOrPostCallback Callback, object? State)
    {
        public void Run()
        {
            ThreadDemotion.EnsureNormal();
            var previous = Current;
            SetSynchronizationContext(Instance);
            try
            {
                Callback(State);
            }
            finally
            {
                SetSynchronizationContext(previous);
            }
        }
    }
}
