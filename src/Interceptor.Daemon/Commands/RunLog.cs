using Interceptor.Linux;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Commands;

/// <summary>
/// The daemon's start and stop lines, written by `run` (event ids 1-99: 1 ready and 12 lockdown are the ones admins and
/// monitoring look for; 10 is the transaction line, see LogTransactionRecorder).
/// </summary>
internal static partial class RunLog
{
    [LoggerMessage(EventId = 1, EventName = "Ready", Level = LogLevel.Information, Message = "ready: listening on {Endpoints}; table inet {Table} verified, intercepting ports {Ports}, exempt uids {ExemptUids}, suspended uids {SuspendedUids}; owner lookup via {LookupMethod}; state {StatePath} ({Restored} deliveries of the last 24 h restored); control socket {ControlSocket}{Metrics}")]
    public static partial void Ready(
        this ILogger logger, string endpoints, string table, string ports, string exemptUids, string suspendedUids, OwnerLookupMethod lookupMethod,
        string statePath, int restored, string controlSocket, string metrics);

    [LoggerMessage(EventId = 12, EventName = "Lockdown", Level = LogLevel.Error, Message = "lockdown: {Reason}; table inet {Table} installed without its redirect: ports {Ports} are refused to non-exempt users until smtp-interceptor owns port {ListenPort}")]
    public static partial void LockedDown(this ILogger logger, string reason, string table, string ports, int listenPort);

    [LoggerMessage(20, LogLevel.Critical, "refusing to run: {Reason}")]
    public static partial void RefusingToRun(this ILogger logger, string reason);

    [LoggerMessage(21, LogLevel.Critical, "cannot open the state store: {Reason}")]
    public static partial void CannotOpenStore(this ILogger logger, string reason);

    [LoggerMessage(22, LogLevel.Critical, "cannot run within the file descriptor limit: {Reason}")]
    public static partial void DescriptorBudgetTooSmall(this ILogger logger, string? reason);

    [LoggerMessage(23, LogLevel.Warning, "{Warning}")]
    public static partial void DescriptorBudgetWarning(this ILogger logger, string warning);

    [LoggerMessage(24, LogLevel.Information, "file descriptors: limit {Limit}, {Open} open at start, {Reserve} reserved, up to {Sessions} SMTP sessions (Listen.MaxConnections) × {PerSession} and {Idle} idle upstream sessions: at most {Needed}")]
    public static partial void DescriptorBudgetPlanned(this ILogger logger, long limit, int open, int reserve, int sessions, int perSession, int idle, long needed);

    // Idle clients give their upstream back (Relay.IdleClientReleaseSeconds): upstream connections are capped on their own.
    [LoggerMessage(32, LogLevel.Information, "file descriptors: limit {Limit}, {Open} open at start, {Reserve} reserved, up to {Sessions} SMTP sessions (Listen.MaxConnections) and {Upstreams} upstream connections, {Idle} of them idle for reuse at most: at most {Needed}")]
    public static partial void DescriptorBudgetPlannedWithRelease(this ILogger logger, long limit, int open, int reserve, int sessions, int upstreams, int idle, long needed);

    [LoggerMessage(25, LogLevel.Critical, "cannot listen on port {Port}: {Reason}{Holder}")]
    public static partial void CannotListen(this ILogger logger, int port, string reason, string holder);

    [LoggerMessage(26, LogLevel.Critical, "cannot open the control socket: {Reason}")]
    public static partial void CannotOpenControlSocket(this ILogger logger, string reason);

    [LoggerMessage(27, LogLevel.Information, "stopping: {Sessions} sessions still open, {GraceSeconds} s to finish")]
    public static partial void Stopping(this ILogger logger, int sessions, double graceSeconds);

    [LoggerMessage(28, LogLevel.Information, "stopped; table inet {Table} left in place, so port {Ports} stays closed to customers until the daemon is back (fail closed)")]
    public static partial void Stopped(this ILogger logger, string table, string ports);

    [LoggerMessage(29, LogLevel.Information, "file descriptor limit raised from {Before} to the hard limit {After}")]
    public static partial void DescriptorLimitRaised(this ILogger logger, ulong before, ulong after);

    [LoggerMessage(30, LogLevel.Warning, "cannot raise the file descriptor limit {Soft} to the hard limit {Hard}: {Reason}")]
    public static partial void DescriptorLimitNotRaised(this ILogger logger, ulong soft, ulong hard, string reason);

    [LoggerMessage(31, LogLevel.Critical, "cannot install the lockdown table inet {Table}: {Reason}")]
    public static partial void LockdownNotInstalled(this ILogger logger, string table, string reason);
}
