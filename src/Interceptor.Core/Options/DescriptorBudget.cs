using System.Globalization;

namespace Interceptor.Core.Options;

/// <summary>
/// How the daemon's file descriptors are shared out, so that it never reaches its limit (RLIMIT_NOFILE). At the
/// limit the .NET runtime cannot even start a thread (it needs a pipe for that) and aborts the whole process with
/// "Out of memory."; nft, the store and upstream connections fail too. So every listener is capped, and the caps
/// are sized from the limit with a fixed reserve kept free:
/// <code>
/// limit ≥ open at start + reserve (160) + sessions × 2 (client + upstream) + idle upstream sessions (≤ min(1000, sessions))
/// </code>
/// </summary>
/// <param name="Limit">The soft descriptor limit in force (after raising it to the hard one).</param>
/// <param name="OpenAtStart">Descriptors already open when the budget was made (runtime, assemblies, store, log).</param>
/// <param name="Sessions">The total cap on SMTP sessions (Listen.MaxConnections, as configured or derived).</param>
/// <param name="IdleUpstreams">The most idle upstream sessions the reuse cache may keep (0 without reuse).</param>
/// <param name="Warning">Set when the cap was derived below <see cref="DefaultMaxConnections"/> for lack of descriptors.</param>
public sealed record DescriptorBudget(long Limit, int OpenAtStart, int Sessions, int IdleUpstreams, string? Warning)
{
    /// <summary>Each SMTP session holds the client's socket and its upstream's.</summary>
    public const int PerSession = 2;

    /// <summary>
    /// Listen.MaxConnections when it is not set (0) and the limit allows it: 10,000 sessions (issue 19), which an idle
    /// session's few kilobytes (it holds no buffer while it waits) make ~100 MB at most; they need ~21,400 descriptors,
    /// which the unit's LimitNOFILE=65536 gives.
    /// </summary>
    public const int DefaultMaxConnections = 10_000;

    /// <summary>The reuse cache's own bound on idle upstream sessions, all destinations together.</summary>
    public const int MaxIdleUpstreams = 1000;

    /// <summary>Admin requests served at once on the control socket; more wait in the kernel's backlog.</summary>
    public const int ControlConnections = 8;

    /// <summary>Metrics requests served at once; more are closed at once (a scraper asks once every few seconds).</summary>
    public const int MetricsConnections = 8;

    /// <summary>Connections over Listen.MaxConnections being told 421 at once; beyond these they are closed at once.</summary>
    public const int RefusalsInFlight = 16;

    /// <summary>
    /// Kept free for what the daemon opens besides connections: thread starts, assemblies loaded later, SQLite's
    /// journal and temporary files, the pipes of nft and alert-command children, netlink lookups, /proc reads.
    /// Measured: ~30-40 more descriptors are open a while after start than when the budget is made (assemblies).
    /// </summary>
    public const int RuntimeReserve = 128;

    /// <summary>Everything that is not a session or an idle upstream session.</summary>
    public const int Reserve = RuntimeReserve + ControlConnections + MetricsConnections + RefusalsInFlight;

    /// <summary>Descriptors this budget accounts for at most; never above <see cref="Limit"/>.</summary>
    public long Needed => Cost(OpenAtStart, Sessions, IdleUpstreams);

    /// <summary>Idle upstream sessions worth keeping for <paramref name="sessions"/> concurrent clients: never more than them.</summary>
    public static int IdleUpstreamsFor(int sessions, bool reuse) => reuse ? Math.Min(MaxIdleUpstreams, sessions) : 0;

    /// <summary>
    /// Sizes the caps for <paramref name="limit"/>. A configured <paramref name="maxConnections"/> (&gt; 0) that does
    /// not fit is an error: the admin asked for it, silently giving less would surprise them. Unset (0), the cap is
    /// <see cref="DefaultMaxConnections"/> or what fits, with a warning when less.
    /// </summary>
    /// <returns>False, with <paramref name="error"/> saying what to change, when not even that fits.</returns>
    public static bool TryPlan(long limit, int openAtStart, int maxConnections, bool reuseUpstreams, out DescriptorBudget budget, out string error)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxConnections);
        var fit = Fitting(limit, openAtStart, reuseUpstreams);
        var perSession = reuseUpstreams ? "3 (client, upstream, an idle upstream kept for reuse)" : "2 (client and upstream)";
        budget = new DescriptorBudget(limit, openAtStart, 0, 0, null);
        if (maxConnections > 0)
        {
            if (maxConnections > fit)
            {
                var needed = Cost(openAtStart, maxConnections, IdleUpstreamsFor(maxConnections, reuseUpstreams));
                error = Invariant($"Listen.MaxConnections {maxConnections} needs {needed} file descriptors ({openAtStart} open at start + {Reserve} reserved + {maxConnections} sessions × {perSession}) but the limit is {limit} (RLIMIT_NOFILE): raise LimitNOFILE to at least {needed}, or lower Listen.MaxConnections to {Math.Max(fit, 0)}");
                return false;
            }

            budget = budget with { Sessions = maxConnections, IdleUpstreams = IdleUpstreamsFor(maxConnections, reuseUpstreams) };
            error = "";
            return true;
        }

        if (fit < 1)
        {
            error = Invariant($"the file descriptor limit {limit} (RLIMIT_NOFILE) leaves no room for a single SMTP session ({openAtStart} open at start + {Reserve} reserved + {perSession} per session): raise LimitNOFILE to at least {Cost(openAtStart, DefaultMaxConnections, IdleUpstreamsFor(DefaultMaxConnections, reuseUpstreams))}");
            return false;
        }

        var sessions = (int)Math.Min(DefaultMaxConnections, fit);
        var warning = sessions < DefaultMaxConnections
            ? Invariant($"Listen.MaxConnections derived from the file descriptor limit {limit}: {sessions} sessions, not the default {DefaultMaxConnections} ({openAtStart} open at start + {Reserve} reserved + {perSession} per session); raise LimitNOFILE to {Cost(openAtStart, DefaultMaxConnections, IdleUpstreamsFor(DefaultMaxConnections, reuseUpstreams))} for the default")
            : null;
        budget = budget with { Sessions = sessions, IdleUpstreams = IdleUpstreamsFor(sessions, reuseUpstreams), Warning = warning };
        error = "";
        return true;
    }

    private static long Cost(int openAtStart, int sessions, int idleUpstreams) =>
        (long)openAtStart + Reserve + ((long)sessions * PerSession) + idleUpstreams;

    /// <summary>The most sessions whose cost fits in <paramref name="limit"/>; 0 or less when none does.</summary>
    private static long Fitting(long limit, int openAtStart, bool reuse)
    {
        var available = limit - openAtStart - Reserve;
        if (!reuse)
        {
            return available / PerSession;
        }

        // Each session brings its own idle upstream until the cache's own bound is reached.
        var perSession = PerSession + 1;
        return available <= (long)MaxIdleUpstreams * perSession
            ? available / perSession
            : (available - MaxIdleUpstreams) / PerSession;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
