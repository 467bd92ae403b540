namespace Interceptor.Core.Events;

/// <summary>One mail transaction as it ended: what the accounting and the log record.</summary>
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
    TimeSpan Duration);
