namespace Interceptor.Smtp.Upstream;

/// <summary>
/// Where an upstream SMTP session stands, held by <see cref="UpstreamConnection"/> from the operations it ran and
/// their replies (never read back from command text). Only <see cref="Ready"/> and <see cref="InTransaction"/>
/// accept a command.
/// </summary>
public enum UpstreamState
{
    /// <summary>Greeted, between transactions: MAIL or RSET may follow. Only this state may be handed to another client.</summary>
    Ready,

    /// <summary>MAIL was accepted: RCPT, DATA or RSET may follow. The upstream holds a transaction.</summary>
    InTransaction,

    /// <summary>DATA got 354: only message bytes and the end of data may follow. Ending the session now means a reset, never QUIT.</summary>
    InData,

    /// <summary>
    /// An operation failed or never finished (timeout, cancellation, lost connection, garbled reply) or the upstream said
    /// 421: a late reply could pair with the wrong command, so nothing is sent on it again.
    /// </summary>
    Broken,

    /// <summary>Ended by us (QUIT, reset or disposal).</summary>
    Closed,
}
