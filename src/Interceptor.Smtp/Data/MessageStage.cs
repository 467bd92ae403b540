using Interceptor.Core.Replies;
using Interceptor.Smtp.Session;

namespace Interceptor.Smtp.Data;

/// <summary>What a stage knows of the message in transit.</summary>
/// <param name="TransactionId">The transaction's id (the trace header's and the log line's).</param>
public sealed record MessageContext(ConnectionOrigin Origin, string TransactionId, string Sender, IReadOnlyList<string> Recipients)
{
    /// <summary>The pool relay that gets the message (the trace header's <c>relay=</c>); null when it goes direct.</summary>
    public string? Relay { get; init; }
}

/// <summary>A stage's decision once the client's message is complete, before the upstream gets the final dot.</summary>
public enum StageDecision
{
    /// <summary>Relay on: the next stage decides, then the upstream.</summary>
    Continue,

    /// <summary>Refuse the message with the stage's reply; the upstream's DATA is aborted, nothing is delivered.</summary>
    Refuse,

    /// <summary>
    /// Keep the message from the upstream (hold-and-release): the pipeline's <see cref="IMessageHolding"/> keeps the spooled
    /// message, the client gets "250 2.0.0 held for review as ID", the upstream's DATA is aborted and the transaction is
    /// recorded as held (TransactionOutcome.Held: the quotas count it then, not again at its release). A holding stage needs the whole message.
    /// </summary>
    Hold,

    /// <summary>
    /// Our own failure, not the message's (the hold store or the scanner could not do its part): the client gets the stage's
    /// 4xx and keeps the message, the upstream's DATA is aborted, and nothing of it counts against the user (no content
    /// refusal, no unsent transaction, no upstream deferral), since another user may be what made it fail.
    /// </summary>
    Defer,
}

/// <summary>What a stage found, for the log line and a hold record (e.g. a scanner's score and top symbols).</summary>
/// <param name="Summary">One line for logs: "score 9.1 (hold 8, reject 15)".</param>
public sealed record StageFinding(string Summary, double? Score = null, IReadOnlyList<string>? Symbols = null);

/// <summary>
/// A stage's decision. <paramref name="AddedHeaders"/> (Continue only, spooled pipelines only): complete header lines
/// (CRLF-terminated) the stage computed from the whole message — a DKIM signature — put on top of the message when it is
/// replayed to the upstream, above the stages' own headers.
/// </summary>
public readonly record struct StageVerdict(StageDecision Decision, SmtpReply? Reply, StageFinding? Finding = null, ReadOnlyMemory<byte> AddedHeaders = default)
{
    public static StageVerdict Continue => new(StageDecision.Continue, null);

    public static StageVerdict ContinueWith(ReadOnlyMemory<byte> addedHeaders) => new(StageDecision.Continue, null, null, addedHeaders);

    public static StageVerdict Refuse(SmtpReply reply, StageFinding? finding = null) => new(StageDecision.Refuse, reply, finding);

    /// <summary>We failed (see <see cref="StageDecision.Defer"/>): the client is told <paramref name="reply"/>, a 4xx.</summary>
    public static StageVerdict Defer(SmtpReply reply) => new(StageDecision.Defer, reply);

    /// <summary>Hold the message: the pipeline's <see cref="IMessageHolding"/> keeps it and makes the client's reply.</summary>
    public static StageVerdict Hold(StageFinding finding) => new(StageDecision.Hold, null, finding);
}

/// <summary>
/// Where held messages go (hold-and-release). <see cref="HoldAsync"/> writes the message and its record durably
/// (fsynced) before it returns: the client's 250 makes us responsible for the message.
/// </summary>
public interface IMessageHolding
{
    /// <summary>Keeps the spooled message; returns the id the client and the admin see. Throws when it cannot keep it
    /// (then the client gets a 4xx and nothing is lost).</summary>
    ValueTask<string> HoldAsync(MessageContext message, IMessageSpool spool, string stage, StageFinding finding, CancellationToken token);
}

/// <summary>
/// One step between "the client's message is complete" and "the upstream has it" (trace header today; spool, scan,
/// hold and DKIM signing later). Stages run in order; see <see cref="MessagePipeline"/>.
/// </summary>
public interface IMessageStage
{
    /// <summary>For logs: which stage stopped a message.</summary>
    string Name { get; }

    /// <summary>
    /// True when the stage must see the whole message before the upstream gets any of it (a scanner, a signer): the
    /// message is then spooled instead of streamed. False keeps DATA streaming with bounded memory.
    /// </summary>
    bool NeedsWholeMessage { get; }

    /// <summary>Complete header lines (each ending in CRLF) to put at the top of the message, or empty. Called once, first.</summary>
    ReadOnlyMemory<byte> HeadersFor(MessageContext message);

    /// <summary>
    /// The client's message is complete and clean (it passed the smuggling filter). <paramref name="spool"/> holds it when
    /// any stage needs the whole message, else null. Called before the upstream gets the final dot.
    /// </summary>
    ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token);
}

/// <summary>The whole message as the client sent it (after the DATA filter, before our headers), kept for the stages.</summary>
public interface IMessageSpool : IAsyncDisposable
{
    long Length { get; }

    ValueTask AppendAsync(ReadOnlyMemory<byte> bytes, CancellationToken token);

    /// <summary>Reads the message from its start; the spool is complete by then.</summary>
    Stream OpenRead();
}

/// <summary>Makes a spool per message (on disk, later); needed only when a stage needs the whole message.</summary>
public interface IMessageSpoolFactory
{
    ValueTask<IMessageSpool> CreateAsync(MessageContext message, CancellationToken token);
}
