using Interceptor.Core.Replies;
using Interceptor.Core.Threading;
using Interceptor.Smtp.Session;

namespace Interceptor.Smtp.Data;

/// <summary>
/// The stages every relayed message passes, in order. When no stage needs the whole message, DATA streams to the
/// upstream chunk by chunk (bounded memory); when one does, the message goes to a spool first and the upstream gets it
/// only after every stage said <see cref="StageDecision.Continue"/>.
/// </summary>
public sealed class MessagePipeline
{
    private readonly IReadOnlyList<IMessageStage> _stages;
    private readonly IMessageSpoolFactory? _spools;
    private readonly IMessageHolding? _holds;

    public MessagePipeline(IReadOnlyList<IMessageStage> stages, IMessageSpoolFactory? spools = null, IMessageHolding? holds = null)
    {
        _stages = stages;
        _spools = spools;
        _holds = holds;
        Streams = !stages.Any(s => s.NeedsWholeMessage);
        if (!Streams && spools is null)
        {
            var needy = string.Join(", ", stages.Where(s => s.NeedsWholeMessage).Select(s => s.Name));
            throw new ArgumentException($"stage(s) {needy} need the whole message: a spool factory is required", nameof(spools));
        }
    }

    /// <summary>Today's pipeline: the trace header, streamed.</summary>
    public static MessagePipeline Default(string hostName, bool includeProcess) => new([new TraceHeaderStage(hostName, includeProcess)]);

    /// <summary>True when the message streams; false when it is spooled first.</summary>
    public bool Streams { get; }

    public IReadOnlyList<IMessageStage> Stages => _stages;

    /// <summary>The spool for a message, when the pipeline spools.</summary>
    public ValueTask<IMessageSpool> CreateSpoolAsync(MessageContext message, CancellationToken token) =>
        _spools?.CreateAsync(message, token) ?? throw new InvalidOperationException("this pipeline streams; it has no spool");

    /// <summary>The header lines every stage adds, in stage order (one stage: its bytes, no copy).</summary>
    public ReadOnlyMemory<byte> HeadersFor(MessageContext message)
    {
        if (_stages.Count == 1)
        {
            return _stages[0].HeadersFor(message);
        }

        var parts = _stages.Select(s => s.HeadersFor(message)).ToArray();
        var all = new byte[parts.Sum(p => p.Length)];
        var at = 0;
        foreach (var part in parts)
        {
            part.CopyTo(all.AsMemory(at));
            at += part.Length;
        }

        return all;
    }

    /// <summary>
    /// Asks each stage in order; the first that does not continue decides (and is named). A hold is carried out here
    /// (the hold store keeps the message, its id goes into the reply). When all continue, the headers they added.
    /// </summary>
    public ValueTask<PipelineResult> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token) =>
        spool is null
            ? AskStagesAsync(message, spool, token)

            // Stages that read the whole message block: they read the spool file, sign (milliseconds of RSA) and fsync
            // held messages. A session's step may run on a thread that polls the sockets of many sessions, which must
            // not wait for that: see BlockingWork.
            : BlockingWork.RunAsync(() => AskStagesAsync(message, spool, token));

    private async ValueTask<PipelineResult> AskStagesAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        ReadOnlyMemory<byte> added = default;
        foreach (var stage in _stages)
        {
            var verdict = await stage.CompleteAsync(message, spool, token);
            switch (verdict.Decision)
            {
                case StageDecision.Continue:
                    if (!verdict.AddedHeaders.IsEmpty)
                    {
                        added = spool is null
                            ? throw new InvalidOperationException($"stage {stage.Name} added headers to a streamed message")
                            : Concat(verdict.AddedHeaders, added);
                    }

                    continue;
                case StageDecision.Refuse or StageDecision.Defer when verdict.Reply is null:
                    throw new InvalidOperationException($"stage {stage.Name} refused a message without a reply");
                case StageDecision.Hold:
                    return new PipelineResult(await HoldAsync(message, spool, stage, verdict, token), stage.Name, default);
                default:
                    return new PipelineResult(verdict, stage.Name, default);
            }
        }

        return new PipelineResult(StageVerdict.Continue, null, added);
    }

    private async ValueTask<StageVerdict> HoldAsync(MessageContext message, IMessageSpool? spool, IMessageStage stage, StageVerdict verdict, CancellationToken token)
    {
        if (spool is null || verdict.Finding is null)
        {
            throw new InvalidOperationException($"stage {stage.Name} held a message it did not ask to see whole, or without a finding");
        }

        if (_holds is null)
        {
            throw new InvalidOperationException($"stage {stage.Name} held a message but the pipeline has no hold store");
        }

        try
        {
            var id = await _holds.HoldAsync(message, spool, stage.Name, verdict.Finding, token);
            return verdict with { Reply = new SmtpReply(250, "2.0.0", $"held for review as {id}") };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not kept, so not ours: the client keeps the message and retries. Our failure, not her content's: it must count
            // toward none of her suspension rules (another user filling the hold store's disk would otherwise get her suspended).
            return StageVerdict.Defer(new SmtpReply(451, "4.3.0", $"the message could not be held for review ({e.Message}); try again later"));
        }
    }

    private static ReadOnlyMemory<byte> Concat(ReadOnlyMemory<byte> first, ReadOnlyMemory<byte> second)
    {
        var all = new byte[first.Length + second.Length];
        first.CopyTo(all);
        second.CopyTo(all.AsMemory(first.Length));
        return all;
    }
}

/// <summary>The pipeline's decision: the deciding verdict (and stage), or Continue with the headers the stages added.</summary>
public readonly record struct PipelineResult(StageVerdict Verdict, string? Stage, ReadOnlyMemory<byte> AddedHeaders);

/// <summary>Today's one stage: the trace header naming the site (<see cref="TraceHeader"/>), added while streaming.</summary>
public sealed class TraceHeaderStage(string hostName, bool includeProcess) : IMessageStage
{
    public string Name => "trace-header";

    public bool NeedsWholeMessage => false;

    public ReadOnlyMemory<byte> HeadersFor(MessageContext message) =>
        TraceHeader.Render(message.Origin, hostName, message.TransactionId, includeProcess, message.Relay);

    public ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token) =>
        ValueTask.FromResult(StageVerdict.Continue);
}
