using System.Globalization;

namespace Interceptor.Core.Options;

/// <summary>
/// How the daemon's file descriptors are shared out, so that it never reaches its limit (RLIMIT_NOFILE). At the
/// limit the .NET runtime cannot even start a thread (it needs a pipe for that) and aborts the whole process with
/// "Out of memory."; nft, the store and upstream connections fail too. So every listener is capped, upstream
/// connections too, and the caps are sized from the limit with a fixed reserve kept free:
/// <code>
/// limit ≥ open at start + reserve (160) + sessions (client sockets) + upstreams (held by sessions or idle in the reuse cache)
/// </code>
/// Where the limit allows, upstreams = sessions + idle upstream sessions (≤ min(1000, sessions)): every session holds
/// its upstream, two descriptors each. When it does not and idle clients give their upstream back
/// (Relay.IdleClientReleaseSeconds), a session costs one descriptor and the upstream connections are a pool of their
/// own, at least half the sessions large (sessions ≤ ⅔ of what is left); a session that finds it full waits for a
/// slot (<c>UpstreamDescriptorGate</c>). Without the release, a session holds its upstream to the end: two each.
/// </summary>
/// <param name="Limit">The soft descriptor limit in force (after raising it to the hard one).</param>
/// <param name="OpenAtStart">Descriptors already open when the budget was made (runtime, assemblies, store, log).</param>
/// <param name="Sessions">The total cap on SMTP sessions (Listen.MaxConnections, as configured or derived).</param>
/// <param name="IdleUpstreams">The most idle upstream sessions the reuse cache may keep (0 without reuse).</param>
/// <param name="Warning">Set when the cap was derived below <see cref="DefaultMaxConnections"/> for lack of descriptors,
/// or when fewer sessions than all may hold an upstream at once.</param>
/// <param name="Upstreams">The most upstream connections open at once: held by sessions plus idle in the reuse cache,
/// pool relays included.</param>
public sealed record DescriptorBudget(long Limit, int OpenAtStart, int Sessions, int IdleUpstreams, string? Warning, int Upstreams)
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
    public long Needed => (long)OpenAtStart + Reserve + Sessions + Upstreams;

    /// <summary>True when not every session can hold an upstream at once (idle clients give theirs back).</summary>
    public bool UpstreamsShared => Upstreams < Sessions;

    /// <summary>Idle upstream sessions worth keeping for <paramref name="sessions"/> concurrent clients: never more than them.</summary>
    public static int IdleUpstreamsFor(int sessions, bool reuse) => reuse ? Math.Min(MaxIdleUpstreams, sessions) : 0;

    /// <summary>
    /// Sizes the caps for <paramref name="limit"/>. A configured <paramref name="maxConnections"/> (&gt; 0) that does
    /// not fit is an error: the admin asked for it, silently giving less would surprise them. Unset (0), the cap is
    /// <see cref="DefaultMaxConnections"/> or what fits, with a warning when less. With
    /// <paramref name="idleClientsRelease"/> (Relay.IdleClientReleaseSeconds &gt; 0) sessions that do not fit at two
    /// descriptors each may share upstream connections: see the class comment.
    /// </summary>
    /// <returns>False, with <paramref name="error"/> saying what to change, when not even that fits.</returns>
    public static bool TryPlan(
        long limit, int openAtStart, int maxConnections, bool reuseUpstreams, out DescriptorBudget budget, out string error, bool idleClientsRelease = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxConnections);
        var wanted = maxConnections > 0 ? maxConnections : DefaultMaxConnections;
        if (idleClientsRelease && wanted > Fitting(limit, openAtStart, reuseUpstreams))
        {
            return TryPlanShared(limit, openAtStart, maxConnections, reuseUpstreams, out budget, out error);
        }

        var fit = Fitting(limit, openAtStart, reuseUpstreams);
        var perSession = reuseUpstreams ? "3 (client, upstream, an idle upstream kept for reuse)" : "2 (client and upstream)";
        budget = new DescriptorBudget(limit, openAtStart, 0, 0, null, 0);
        if (maxConnections > 0)
        {
            if (maxConnections > fit)
            {
                var needed = Cost(openAtStart, maxConnections, IdleUpstreamsFor(maxConnections, reuseUpstreams));
                error = Invariant($"Listen.MaxConnections {maxConnections} needs {needed} file descriptors ({openAtStart} open at start + {Reserve} reserved + {maxConnections} sessions × {perSession}) but the limit is {limit} (RLIMIT_NOFILE): raise LimitNOFILE to at least {needed}, or lower Listen.MaxConnections to {Math.Max(fit, 0)}");
                return false;
            }

            budget = Dedicated(budget, maxConnections, reuseUpstreams, null);
            error = "";
            return true;
        }

        if (fit < 1)
        {
            error = Invariant($"the file descriptor limit {limit} (RLIMIT_NOFILE) leaves no room for a single SMTP session ({openAtStart} open at start + {Reserve} reserved + {perSession} per session): raise LimitNOFILE to at least {DefaultCost(openAtStart, reuseUpstreams)}");
            return false;
        }

        var sessions = (int)Math.Min(DefaultMaxConnections, fit);
        var warning = sessions < DefaultMaxConnections
            ? Invariant($"Listen.MaxConnections derived from the file descriptor limit {limit}: {sessions} sessions, not the default {DefaultMaxConnections} ({openAtStart} open at start + {Reserve} reserved + {perSession} per session); raise LimitNOFILE to {DefaultCost(openAtStart, reuseUpstreams)} for the default")
            : null;
        budget = Dedicated(budget, sessions, reuseUpstreams, warning);
        error = "";
        return true;
    }

    /// <summary>
    /// The plan when idle clients give their upstream back and two descriptors per session do not fit: one per session,
    /// the rest for upstream connections, at least half as many as sessions.
    /// </summary>
    private static bool TryPlanShared(long limit, int openAtStart, int maxConnections, bool reuse, out DescriptorBudget budget, out string error)
    {
        var available = limit - openAtStart - Reserve;
        var fit = Math.Max(available * 2 / 3, 0);
        const string shape = "1 per session (client) + an upstream connection for at least half of them, idle clients giving theirs back after Relay.IdleClientReleaseSeconds";
        budget = new DescriptorBudget(limit, openAtStart, 0, 0, null, 0);
        if (maxConnections > fit)
        {
            var needed = (long)openAtStart + Reserve + maxConnections + ((maxConnections + 1) / 2);
            error = Invariant($"Listen.MaxConnections {maxConnections} needs {needed} file descriptors ({openAtStart} open at start + {Reserve} reserved + {shape}) but the limit is {limit} (RLIMIT_NOFILE): raise LimitNOFILE to at least {needed}, or lower Listen.MaxConnections to {fit}");
            return false;
        }

        if (fit < 1)
        {
            error = Invariant($"the file descriptor limit {limit} (RLIMIT_NOFILE) leaves no room for a single SMTP session ({openAtStart} open at start + {Reserve} reserved + {shape}): raise LimitNOFILE to at least {DefaultCost(openAtStart, reuse)}");
            return false;
        }

        var sessions = maxConnections > 0 ? maxConnections : (int)Math.Min(DefaultMaxConnections, fit);
        var upstreams = (int)Math.Min(available - sessions, int.MaxValue);
        var idle = Math.Min(IdleUpstreamsFor(sessions, reuse), upstreams);
        var derived = maxConnections == 0 && sessions < DefaultMaxConnections
            ? Invariant($"Listen.MaxConnections derived from the file descriptor limit {limit}, not the default {DefaultMaxConnections}: ")
            : "";
        var forDefault = derived.Length > 0 ? Invariant($", {DefaultCost(openAtStart, reuse)} for the default") : "";
        var warning = upstreams < sessions || derived.Length > 0
            ? Invariant($"{derived}{sessions} sessions, at most {upstreams} of them with an upstream connection at once (idle clients give theirs back after Relay.IdleClientReleaseSeconds); raise LimitNOFILE to {Cost(openAtStart, sessions, IdleUpstreamsFor(sessions, reuse))} for an upstream connection for every session{forDefault}")
            : null;
        budget = budget with { Sessions = sessions, IdleUpstreams = idle, Upstreams = upstreams, Warning = warning };
        error = "";
        return true;
    }

    /// <summary>Every session holds its own upstream: as many upstream connections as sessions, plus the idle ones.</summary>
    private static DescriptorBudget Dedicated(DescriptorBudget budget, int sessions, bool reuse, string? warning)
    {
        var idle = IdleUpstreamsFor(sessions, reuse);
        return budget with { Sessions = sessions, IdleUpstreams = idle, Upstreams = sessions + idle, Warning = warning };
    }

    private static long DefaultCost(int openAtStart, bool reuse) =>
        Cost(openAtStart, DefaultMaxConnections, IdleUpstreamsFor(DefaultMaxConnections, reuse));

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
