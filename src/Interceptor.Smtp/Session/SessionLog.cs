using Interceptor.Core.Replies;
using Microsoft.Extensions.Logging;

namespace Interceptor.Smtp.Session;

/// <summary>The session's log lines (source-generated), with the texts and fields they always had.</summary>
internal static partial class SessionLog
{
    [LoggerMessage(EventId = 1301, Level = LogLevel.Information, Message = "closing idle session uid={Uid} user={User} after {IdleSeconds} s without input")]
    public static partial void Idle(ILogger logger, uint uid, string user, double idleSeconds);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: a command line trickled for over {Seconds} s")]
    public static partial void CommandLineTrickled(ILogger logger, uint uid, string user, double seconds);

    [LoggerMessage(EventId = 1303, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: DATA slower than {Rate} bytes/s")]
    public static partial void DataTooSlow(ILogger logger, uint uid, string user, long rate);

    [LoggerMessage(EventId = 1304, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: its replies were not read for {Seconds} s")]
    public static partial void RepliesNotRead(ILogger logger, uint uid, string user, double seconds);

    [LoggerMessage(EventId = 1305, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: longer than {LimitSeconds} s")]
    public static partial void SessionTooLong(ILogger logger, uint uid, string user, double limitSeconds);

    [LoggerMessage(EventId = 1306, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: {Errors} errors")]
    public static partial void TooManyErrors(ILogger logger, uint uid, string user, int errors);

    [LoggerMessage(EventId = 1307, Level = LogLevel.Debug, Message = "client uid={Uid} user={User} went away: {Reason}")]
    public static partial void ClientWentAway(ILogger logger, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1308, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: the TLS handshake after STARTTLS did not finish within {Seconds} s")]
    public static partial void TlsHandshakeStalled(ILogger logger, uint uid, string user, double seconds);

    [LoggerMessage(EventId = 1309, Level = LogLevel.Information, Message = "closing session uid={Uid} user={User}: the TLS handshake after STARTTLS failed: {Reason}")]
    public static partial void TlsHandshakeFailed(ILogger logger, uint uid, string user, string reason);

    /// <summary>No certificate could be made for the client's name (the CA expired, a key could not be generated): no
    /// client causes it, so it is an error, and every client of the host asking for STARTTLS meets it until it is fixed.</summary>
    [LoggerMessage(EventId = 1316, Level = LogLevel.Error, Message = "closing session uid={Uid} user={User}: STARTTLS failed on our side: {Reason}")]
    public static partial void TlsServerFailed(ILogger logger, Exception exception, uint uid, string user, string reason);

    /// <summary>An empty SNI means the certificate named the dialled address.</summary>
    [LoggerMessage(EventId = 1315, Level = LogLevel.Information, Message = "STARTTLS for uid={Uid} user={User}: {Protocol} {Cipher}, sni={Sni}; {Discarded} byte(s) sent before the handshake discarded")]
    public static partial void TlsStarted(ILogger logger, uint uid, string user, System.Security.Authentication.SslProtocols protocol, System.Net.Security.TlsCipherSuite cipher, string sni, int discarded);

    [LoggerMessage(EventId = 1310, Level = LogLevel.Information, Message = "upstream {Upstream} refused the session for uid={Uid} user={User}: {Reply}")]
    public static partial void UpstreamRefusedSession(ILogger logger, string upstream, uint uid, string user, SmtpReply reply);

    [LoggerMessage(EventId = 1311, Level = LogLevel.Warning, Message = "upstream {Upstream} unavailable for uid={Uid} user={User}: {Reason}")]
    public static partial void UpstreamUnavailable(ILogger logger, string upstream, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1312, Level = LogLevel.Debug, Message = "cached upstream session to {Upstream} was closed while idle; opening a new one for uid={Uid} user={User}")]
    public static partial void CachedUpstreamClosed(ILogger logger, string upstream, uint uid, string user);

    /// <summary>Debug when the failure is the expected end of a cached session, else Warning.</summary>
    [LoggerMessage(EventId = 1313, Message = "upstream {Upstream} failed for uid={Uid} user={User}: {Reason}")]
    public static partial void UpstreamFailed(ILogger logger, LogLevel level, string upstream, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1314, Level = LogLevel.Information, Message = "upstream {Upstream} failed at RSET for uid={Uid} user={User}: {Reason}")]
    public static partial void UpstreamResetFailed(ILogger logger, string upstream, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1320, Level = LogLevel.Information, Message = "renamed {Count} client-supplied {Header} header(s) to X-Interceptor-Client-Origin in message {Id} of uid={Uid} user={User}")]
    public static partial void RenamedTraceHeaders(ILogger logger, int count, string header, string id, uint uid, string user);

    [LoggerMessage(EventId = 1321, Level = LogLevel.Warning, Message = "upstream {Upstream} failed after the end of data for uid={Uid} user={User}: {Reason}")]
    public static partial void UpstreamFailedAfterEndOfData(ILogger logger, string upstream, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1322, Level = LogLevel.Warning, Message = "no verdict from upstream {Upstream} for uid={Uid} user={User} before shutdown: recorded as unknown, counted as sent")]
    public static partial void NoVerdictBeforeShutdown(ILogger logger, string upstream, uint uid, string user);

    [LoggerMessage(EventId = 1324, Level = LogLevel.Debug, Message = "uid={Uid} user={User} silent for {Seconds} s between transactions: upstream session {Upstream} given back until its next MAIL")]
    public static partial void IdleUpstreamReleased(ILogger logger, uint uid, string user, double seconds, string upstream);

    [LoggerMessage(EventId = 1325, Level = LogLevel.Warning, Message = "giving back the idle upstream session of uid={Uid} user={User} failed: {Reason}")]
    public static partial void IdleUpstreamReleaseFailed(ILogger logger, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1326, Level = LogLevel.Warning, Message = "message {Id} of uid={Uid} user={User} could not be spooled for the message stages: {Reason}; the rest of it is dropped and the client told to try again later")]
    public static partial void SpoolFailed(ILogger logger, string id, uint uid, string user, string reason);

    [LoggerMessage(EventId = 1323, Level = LogLevel.Information, Message = "message stage {Stage} stopped message {Id} of uid={Uid} user={User}: {Reply}")]
    public static partial void StageStopped(ILogger logger, string stage, string id, uint uid, string user, SmtpReply reply);
}
