using Interceptor.Core.Policy;
using Interceptor.Smtp.Data;

namespace Interceptor.Daemon.Hold;

/// <summary>
/// Suspension.Action=Hold: every message of a user suspended automatically is held for review instead of relayed (the
/// kernel lets their connections through, see <see cref="SuspensionRegistry.HoldsInstead"/>). It needs the whole message,
/// so while it is configured every message is spooled; it is in the pipeline only then.
/// </summary>
public sealed class SuspendedUserHoldStage(SuspensionRegistry suspensions) : IMessageStage
{
    public const string StageName = "suspended-user";

    public string Name => StageName;

    public bool NeedsWholeMessage => true;

    public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

    public ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(message);
        return ValueTask.FromResult(suspensions.HoldsMailOf(message.Origin.Uid, out var suspension)
            ? StageVerdict.Hold(new StageFinding($"user {suspension!.User} is suspended: {suspension.Reason}"))
            : StageVerdict.Continue);
    }
}
