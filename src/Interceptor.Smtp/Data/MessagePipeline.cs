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

    public MessagePipeline(IReadOnlyList<IMessageStage> stages, IMessageSpoolFactory? spools = null)
    {
        _stages = stages;
        _spools = spools;
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

    /// <summary>Asks each stage in order; the first that does not continue decides (and is named).</summary>
    public async ValueTask<(StageVerdict Verdict, string? Stage)> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        foreach (var stage in _stages)
        {
            var verdict = await stage.CompleteAsync(message, spool, token);
            if (verdict.Decision != StageDecision.Continue)
            {
                if (verdict.Reply is null)
                {
                    throw new InvalidOperationException($"stage {stage.Name} stopped a message without a reply");
                }

                if (verdict.Decision == StageDecision.Hold && spool is null)
                {
                    throw new InvalidOperationException($"stage {stage.Name} held a message it did not ask to see whole");
                }

                return (verdict, stage.Name);
            }
        }

        return (StageVerdict.Continue, null);
    }
}

/// <summary>Today's one stage: the trace header naming the site (<see cref="TraceHeader"/>), added while streaming.</summary>
public sealed class TraceHeaderStage(string hostName, bool includeProcess) : IMessageStage
{
    public string Name => "trace-header";

    public bool NeedsWholeMessage => false;

    public ReadOnlyMemory<byte> HeadersFor(MessageContext message) =>
        TraceHeader.Render(message.Origin, hostName, message.TransactionId, includeProcess);

    public ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token) =>
        ValueTask.FromResult(StageVerdict.Continue);
}
