namespace Interceptor.Core.Events;

/// <summary>How a transaction ended, as far as the accounting cares.</summary>
public enum TransactionOutcome
{
    /// <summary>DATA is being relayed; counted as sent until the outcome is known (a crash leaves it so: conservative).</summary>
    Pending,

    /// <summary>The upstream said 250 after the final dot.</summary>
    Delivered,

    /// <summary>A 4xx from the upstream, or a fault that became a 4xx.</summary>
    Deferred,

    /// <summary>A 5xx from the upstream.</summary>
    Rejected,

    /// <summary>Refused by us before anything was relayed (policy, bad data), or abandoned by the client.</summary>
    Refused,

    /// <summary>
    /// The final dot went upstream but no verdict came back (its timeout, a lost connection, a shutdown): the upstream
    /// may have delivered it, so it is charged to the quotas as sent, and the client was told 451 (delivery not confirmed).
    /// </summary>
    Unknown,

    /// <summary>
    /// Kept by a message stage for review (hold-and-release). Nothing went out, but the quotas count it as sent when it is
    /// held (a release does not count it again): what a user can leave in the hold store is bounded by her quotas.
    /// </summary>
    Held,
}

/// <summary>
/// How a transaction that never reached DATA ended. Nothing of it went upstream beyond MAIL and RCPT, so it is not
/// stored (nor logged) one row each: it is tallied per user, kind and minute. A fixed set, so a client cannot make the
/// tally grow by varying what it sends.
/// </summary>
public enum UnsentKind
{
    /// <summary>MAIL refused here before it reached the upstream (a parameter the upstream does not support).</summary>
    MailRefused,

    /// <summary>The client reset the transaction (RSET, or EHLO/HELO again) before DATA.</summary>
    Reset,

    /// <summary>The client left, or the session ended, before DATA.</summary>
    ClientLeft,

    /// <summary>The upstream refused MAIL or every recipient.</summary>
    UpstreamRefused,

    /// <summary>
    /// Refused here at DATA before anything was relayed (improper pipelining). The store refusing the Pending row is tallied
    /// under it too, but as our failure (<see cref="OwnStages.Failed"/>): toward no suspension rule.
    /// </summary>
    RefusedAtData,

    /// <summary>
    /// The client left or stalled during DATA, before its end: the upstream dropped the partial message. Counted like the
    /// others: a loop of MAIL, RCPT, DATA and a hang-up would otherwise probe recipients at an MX without end.
    /// </summary>
    AbandonedInData,
}

/// <summary>What our own side (the message stages, the spool, the store) made of a transaction.</summary>
public enum OwnStages
{
    /// <summary>It ended before they ran: the client left or was refused, the upstream refused, an upstream error mid-DATA.</summary>
    NotRun,

    /// <summary>They ran on the whole message and let it on (or held it): nothing of ours failed it.</summary>
    Passed,

    /// <summary>A stage of ours or our disk failed it: not the client's doing, nor necessarily her own.</summary>
    Failed,
}

/// <summary>One mail transaction: what the accounting and the log record.</summary>
public sealed record TransactionEvent(
    string Id,
    DateTimeOffset Started,
    uint Uid,
    string User,
    string Sender,
    int RecipientCount,
    long SizeBytes,
    string OriginalDestination,
    string Upstream,
    string Reply,
    TimeSpan Duration)
{
    public TransactionOutcome Outcome { get; init; } = TransactionOutcome.Refused;

    /// <summary>Set when the transaction ended before DATA: how. Such transactions are tallied, not stored one by one.</summary>
    public UnsentKind? Unsent { get; init; }

    /// <summary>"pid=123 exe=/usr/bin/php8.2 cwd=/home/alice/site", when it could be found.</summary>
    public string? Process { get; init; }

    /// <summary>The socket's real uid when it was a subordinate uid of <see cref="Uid"/> (/etc/subuid); not stored, logged.</summary>
    public uint? SubordinateUid { get; init; }

    /// <summary>
    /// A message stage refused the message for its content (a scanner's score over Scan.RejectScore): like a quota refusal
    /// it counts toward Suspension.RefusalLimit, so a site sending spam is stopped as one hammering its quotas is.
    /// </summary>
    public bool ContentRefused { get; init; }

    /// <summary>
    /// What our own side made of it: <see cref="OwnStages.Failed"/> when a stage of ours or our disk failed it (a scan that
    /// timed out, a spool or the store the disk could not keep), counted toward no quota or suspension, only by
    /// <see cref="Policy.LocalFailureBreaker"/>; <see cref="OwnStages.Passed"/> when the message stages ran on the whole
    /// message and let it on. Not stored.
    /// </summary>
    public OwnStages Stages { get; init; }

    public bool FailedHere => Stages == OwnStages.Failed;

    /// <summary>The pool relay that carried it (Relay.Smarthosts name); null when it went direct. Logged, not stored.</summary>
    public string? Relay { get; init; }

    /// <summary>
    /// True for the outcomes that count as sent (quotas): delivered, possibly delivered, or held for review (charged when
    /// held, so that what a user can leave in the hold store is bounded by her quotas; a release does not charge again).
    /// </summary>
    public static bool CountsAsSent(TransactionOutcome outcome) =>
        outcome is TransactionOutcome.Delivered or TransactionOutcome.Pending or TransactionOutcome.Unknown or TransactionOutcome.Held;

    /// <summary>The outcome implied by a final reply code.</summary>
    public static TransactionOutcome OutcomeOf(int replyCode) => replyCode switch
    {
        >= 200 and < 300 => TransactionOutcome.Delivered,
        >= 400 and < 500 => TransactionOutcome.Deferred,
        _ => TransactionOutcome.Rejected,
    };
}
