using System.Net;
using Interceptor.Smtp.Session;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// The listener's log lines (event ids 200-299; the lockdown lines keep 12 and 13), and the scope that names the user of
/// every line written while a session runs.
/// </summary>
internal static partial class InterceptLog
{
    /// <summary>
    /// Opens the session's logging scope: every line written inside it, by any component, carries Uid, User and SessionId
    /// as JSON fields (Scopes), whether or not its own template names them. Set once the connection is attributed.
    /// </summary>
    public static IDisposable? BeginSession(this ILogger logger, long sessionId, ConnectionOrigin origin) =>
        logger.BeginScope(new SessionLogScope(sessionId, origin.Uid, origin.User));

    [LoggerMessage(200, LogLevel.Warning, "connection cap reached: {Max} SMTP sessions open (Listen.MaxConnections); {Count} connections refused over {Seconds:0} s (421 4.7.0, or closed at once while {Answering} refusals are being written); at most one such line per {Interval:0} s")]
    public static partial void ConnectionCapReached(this ILogger logger, int max, long count, double seconds, int answering, double interval);

    /// <summary>The per-connection line: generated code checks the level first, so it costs no allocation when debug is off.</summary>
    [LoggerMessage(201, LogLevel.Debug, "session uid={Uid} user={User} client={Client} dst={Destination}")]
    public static partial void SessionStarted(this ILogger logger, uint uid, string user, IPEndPoint client, IPEndPoint destination);

    [LoggerMessage(202, LogLevel.Error, "session {SessionId} failed")]
    public static partial void SessionFailed(this ILogger logger, Exception exception, long sessionId);

    [LoggerMessage(203, LogLevel.Error, "cannot list the sockets listening on port {Port}: {Reason}")]
    public static partial void CannotListListeners(this ILogger logger, int port, string reason);

    [LoggerMessage(204, LogLevel.Information, "fair share: a flooding user's work runs at nice {Nice} while other users are served")]
    public static partial void CrowdedUsersDemoted(this ILogger logger, int nice);

    [LoggerMessage(205, LogLevel.Warning, "fair share: this process cannot set a thread's nice value back to 0 (no CAP_SYS_NICE and RLIMIT_NICE below 20; the unit sets LimitNICE=+0), so a flooding user's work is not demoted: the daemon's turns still share its time, but the kernel does not favour other users' steps")]
    public static partial void CrowdedUsersNotDemoted(this ILogger logger);

    [LoggerMessage(206, LogLevel.Warning, "the store's writer thread cannot run as SCHED_BATCH (refused by the kernel or the unit's system-call filter): each time a session wakes it, it may take the core from the socket thread that woke it")]
    public static partial void HelperThreadsNotBatch(this ILogger logger);

    [LoggerMessage(207, LogLevel.Information, "fair share: a user flooding while others send has its relaying paced while the CPU pressure ({Path}, {Source}) is above {Above}% (Fairness.PaceAbovePressurePercent), to no less than {Minimum}% of a core")]
    public static partial void FloodsPaced(this ILogger logger, int above, string path, string source, int minimum);

    [LoggerMessage(208, LogLevel.Information, "fair share: floods are not paced (Fairness.PaceAbovePressurePercent is 0); the turns and the flood's nice value still apply")]
    public static partial void FloodsNotPacedByConfiguration(this ILogger logger);

    [LoggerMessage(209, LogLevel.Warning, "fair share: floods are not paced: the kernel gives no CPU pressure at {Path} (a kernel without CONFIG_PSI, or booted with psi=0); the turns and the flood's nice value still apply")]
    public static partial void FloodsNotPacedWithoutPressure(this ILogger logger, string path);

    [LoggerMessage(210, LogLevel.Warning, "fair share: uid {Uid} ({User}) floods while other users send and the CPU is contended (pressure {Pressure:0}%): its relaying is paced to {Share:0}% of a core")]
    public static partial void FloodPaced(this ILogger logger, uint uid, string user, double share, double pressure);

    [LoggerMessage(211, LogLevel.Information, "fair share: floods are no longer paced (last paced: uid {Uid} ({User})): {Why}")]
    public static partial void FloodNoLongerPaced(this ILogger logger, uint uid, string user, string why);

    [LoggerMessage(EventId = 12, EventName = "Lockdown", Level = LogLevel.Error, Message = "lockdown: {Reason}; table inet {Table} now refuses ports {Ports} to non-exempt users instead of redirecting them to port {ListenPort}")]
    public static partial void Lockdown(this ILogger logger, string reason, string table, string ports, int listenPort);

    [LoggerMessage(EventId = 13, EventName = "LockdownLifted", Level = LogLevel.Warning, Message = "lockdown lifted: port {ListenPort} is ours alone again (was: {Reason}); table inet {Table} redirects again")]
    public static partial void LockdownLifted(this ILogger logger, int listenPort, string reason, string table);
}
