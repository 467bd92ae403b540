using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Control;

/// <summary>Log lines of the control socket and the admin verbs (event ids 700-799): who asked for what, and what changed.</summary>
internal static partial class ControlLog
{
    [LoggerMessage(700, LogLevel.Information, "control socket {Path} ready: admin commands for root{Group}")]
    public static partial void Ready(this ILogger logger, string path, string group);

    [LoggerMessage(701, LogLevel.Debug, "control connection {Id} ended: {Reason}")]
    public static partial void ConnectionEnded(this ILogger logger, long id, string reason);

    [LoggerMessage(702, LogLevel.Error, "control connection {Id} failed")]
    public static partial void ConnectionFailed(this ILogger logger, Exception exception, long id);

    [LoggerMessage(703, LogLevel.Warning, "control socket: refused a peer whose credentials the kernel did not give: {Reason}")]
    public static partial void PeerWithoutCredentials(this ILogger logger, string reason);

    [LoggerMessage(704, LogLevel.Warning, "control socket: refused uid={Uid} gid={Gid} pid={Pid}: neither root nor a member of the admin group")]
    public static partial void PeerRefused(this ILogger logger, uint uid, uint gid, int pid);

    [LoggerMessage(705, LogLevel.Information, "control socket: uid={Uid} pid={Pid} {Verb}")]
    public static partial void Request(this ILogger logger, uint uid, int pid, string verb);

    [LoggerMessage(706, LogLevel.Information, "control socket: uid={Uid} pid={Pid} {Verb} {User}")]
    public static partial void RequestForUser(this ILogger logger, uint uid, int pid, string verb, string user);

    [LoggerMessage(707, LogLevel.Error, "control socket: {Verb} failed")]
    public static partial void VerbFailed(this ILogger logger, Exception exception, string verb);

    [LoggerMessage(708, LogLevel.Warning, "control socket: {Count} admin requests still running at shutdown")]
    public static partial void StillRunningAtShutdown(this ILogger logger, int count);

    [LoggerMessage(709, LogLevel.Information, "removed the stale control socket {Path} (no daemon listened on it)")]
    public static partial void StaleSocketRemoved(this ILogger logger, string path);

    [LoggerMessage(720, LogLevel.Error, "admin uid={AdminUid} pid={AdminPid}: suspension of uid={Uid} user={User} is incomplete: {Reason}")]
    public static partial void SuspensionIncomplete(this ILogger logger, uint adminUid, int adminPid, uint uid, string user, string reason);

    [LoggerMessage(721, LogLevel.Warning, "admin uid={AdminUid} pid={AdminPid} suspended uid={Uid} user={User}: {Reason}")]
    public static partial void Suspended(this ILogger logger, uint adminUid, int adminPid, uint uid, string user, string reason);

    [LoggerMessage(722, LogLevel.Warning, "admin uid={AdminUid} pid={AdminPid} unsuspended uid={Uid} user={User}")]
    public static partial void Unsuspended(this ILogger logger, uint adminUid, int adminPid, uint uid, string user);
}
