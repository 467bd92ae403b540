namespace Interceptor.Smtp.Session;

/// <summary>
/// Where the conversation with the client stands. Commands are read only in the first four states; the transaction
/// exists exactly in <see cref="MailGiven"/>, <see cref="RcptGiven"/> and <see cref="InData"/>.
/// </summary>
public enum SessionState
{
    /// <summary>Greeted with 220; no EHLO/HELO yet.</summary>
    Connected,

    /// <summary>EHLO/HELO accepted; no transaction.</summary>
    Greeted,

    /// <summary>MAIL accepted by the upstream; no recipient accepted yet.</summary>
    MailGiven,

    /// <summary>At least one recipient accepted by the upstream.</summary>
    RcptGiven,

    /// <summary>Between our 354 and the reply to the final dot: client lines are message content, not commands.</summary>
    InData,

    /// <summary>The session ends: QUIT, a 421, a protocol violation we hang up on, or the client left.</summary>
    Closing,
}

public static class SessionStates
{
    /// <summary>True where a client line is read as a command.</summary>
    public static bool ReadsCommands(this SessionState state) => state is SessionState.Connected or SessionState.Greeted or SessionState.MailGiven or SessionState.RcptGiven;

    /// <summary>True where a mail transaction is open.</summary>
    public static bool HoldsTransaction(this SessionState state) => state is SessionState.MailGiven or SessionState.RcptGiven or SessionState.InData;
}
