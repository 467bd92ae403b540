using Interceptor.Core.Options;

namespace Interceptor.Smtp.Session;

/// <summary>Why a connection's time ran out; each has its own reply and log line (<see cref="SessionTimeouts"/>).</summary>
public enum TimeoutReason
{
    /// <summary>No input between commands (or in DATA) for the idle time.</summary>
    Idle,

    /// <summary>A command line had begun and did not end in time: a trickle, never idle.</summary>
    CommandLine,

    /// <summary>DATA arrives below the minimum rate after the grace period.</summary>
    SlowData,

    /// <summary>The client does not read its replies: our write did not complete in the idle time.</summary>
    RepliesNotRead,

    /// <summary>The whole session took longer than its limit.</summary>
    SessionTooLong,

    /// <summary>
    /// After STARTTLS the TLS handshake did not finish within the command line time: a client that stalls mid-handshake.
    /// Nothing can be said to it (the wire is half TLS), so the session just ends.
    /// </summary>
    TlsHandshake,

    /// <summary>
    /// The upstream did not answer in time. Its limits (Relay.ReplyTimeoutSeconds, DataReplyTimeoutSeconds) are enforced on
    /// the upstream session itself: the client gets a 451 naming the wait ("upstream H: no reply within N s; try again
    /// later"), the transaction is deferred or unknown, and the client's session goes on.
    /// </summary>
    UpstreamSilent,
}

/// <summary>The time limits of one client connection.</summary>
/// <param name="Idle">No input (or no progress writing a reply) for this long ends the session.</param>
/// <param name="CommandLine">A command line must be complete this long after its first byte.</param>
/// <param name="Session">The whole session.</param>
/// <param name="DataRateGrace">How long DATA may run before its rate is judged.</param>
/// <param name="MinDataBytesPerSecond">The rate DATA must keep after the grace; 0 for none.</param>
public sealed record TimeoutLimits(TimeSpan Idle, TimeSpan CommandLine, TimeSpan Session, TimeSpan DataRateGrace, long MinDataBytesPerSecond)
{
    public static TimeoutLimits From(SmtpOptions smtp) => new(
        smtp.IdleTimeout,
        smtp.CommandLineTimeout,
        smtp.SessionTimeout,
        smtp.DataRateGrace,
        smtp.MinDataRate.BytesPerSecond);

    /// <summary>The limit that <paramref name="reason"/> says was exceeded (for replies and logs).</summary>
    public TimeSpan For(TimeoutReason reason) => reason switch
    {
        TimeoutReason.Idle or TimeoutReason.RepliesNotRead => Idle,
        TimeoutReason.CommandLine or TimeoutReason.TlsHandshake => CommandLine,
        TimeoutReason.SessionTooLong => Session,
        TimeoutReason.SlowData => DataRateGrace,
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "the upstream's limits are its own"),
    };
}

/// <summary>The connection's time ran out for <see cref="Reason"/>; the session answers and closes.</summary>
public sealed class SessionTimeoutException(TimeoutReason reason, TimeSpan limit)
    : TimeoutException($"{reason} after {limit.TotalSeconds:0} s")
{
    public TimeoutReason Reason { get; } = reason;

    public TimeSpan Limit { get; } = limit;
}
