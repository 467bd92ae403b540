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

    /// <summary>"pid=123 exe=/usr/bin/php8.2 cwd=/home/alice/site", when it could be found.</summary>
    public string? Process { get; init; }

    /// <summary>The socket's real uid when it was a subordinate uid of <see cref="Uid"/> (/etc/subuid); not stored, logged.</summary>
    public uint? SubordinateUid { get; init; }

    /// <summary>The outcome implied by a final reply code.</summary>
    public static TransactionOutcome OutcomeOf(int replyCode) => replyCode switch
    {
        >= 200 and < 300 => TransactionOutcome.Delivered,
        >= 400 and < 500 => TransactionOutcome.Deferred,
        _ => TransactionOutcome.Rejected,
    };
}
