using System.Globalization;

namespace Interceptor.Daemon.Hosting;

/// <summary>
/// Where socket completions run. By default .NET's socket engine (one thread polling epoll) hands every completion to
/// the thread pool, and the session's continuation then goes to the fair-share scheduler's pump: two wake-ups of idle
/// threads for each lock-step exchange, about 0.2 ms each on this kind of host, which made most of the latency the
/// relay added (issue 19, same-minute comparison: +2.92 ms a message before, +1.69 with completions inline). With
/// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c> the engine runs completions on its polling threads (one per
/// two processors here, <see cref="PollingThreads"/>); when it is idle, the scheduler then runs the step right there (see
/// <see cref="Fairness.FairShareScheduler"/>), as an event loop does.
/// </summary>
/// <remarks>
/// The price is the event loop's: a step that blocks or runs on holds every connection of its polling thread. Steps
/// only parse, decide and write; work that may block runs as Core's BlockingWork (on the scheduler's pumps: spooled
/// stages, TLS handshakes, a suspension's nft run); a session's loops give the thread up after a slice without a wait
/// (Core's ThreadBudget); connections before their session and the background services run under
/// <see cref="ThreadPoolContext"/>. An admin can set the variable to 0 in the unit's environment to get the thread
/// pool's dispatch back.
/// </remarks>
public static class SocketThreads
{
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>How many polling threads .NET's socket engine starts (read once, with the variable above).</summary>
    public const string EngineCountVariable = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";

    /// <summary>The name .NET gives its socket engine's polling threads.</summary>
    public const string EngineThreadName = ".NET Sockets";

    /// <summary>
    /// Turns inline completions on unless the environment already says otherwise. .NET reads the variable once, when
    /// the first socket operation starts its engine: call this first thing in Main.
    /// </summary>
    public static void PreferInlineCompletions()
    {
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        }
        if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) == "1"
            && Environment.GetEnvironmentVariable(EngineCountVariable) is null)
        {
            Environment.SetEnvironmentVariable(EngineCountVariable, PollingThreads(Environment.ProcessorCount).ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>
    /// Polling threads for this many processors: half of them, at least one. With inline completions .NET would start
    /// one per processor, and under load the scheduler's pumps (one per processor) run beside them, so busy threads
    /// outnumbered the cores two to one and preempted each other in the middle of steps. On two cores, one polling
    /// thread instead of two cut the daemon's CPU per relayed message by about a sixth (README → Performance).
    /// </summary>
    public static int PollingThreads(int processors) => Math.Max(1, processors / 2);
}
