using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Daemon.Hold;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Identity;
using Interceptor.Smtp.Scan;
using Microsoft.Extensions.Logging;

namespace Interceptor.Daemon.Intercept;

/// <summary>
/// The one message pipeline every session of the listener shares, from the configuration. Stages in order: the trace
/// header (streamed); the From policy (<see cref="Domains.MailIdentitySetup"/>); holding a suspended user's mail
/// (<c>Suspension.Action=Hold</c>); content scanning (<c>Scan.*</c>); DKIM signing, last so it signs exactly what the
/// upstream gets. Cheap decisions first, so a held user's message is never sent to the scanner; the From policy before
/// any hold, since a released message goes out as it was held, past every later stage (a forged From held for its spam
/// score and released would otherwise escape <c>FromPolicy.Mode=Refuse</c>). When no stage needs the whole message, the
/// pipeline streams exactly as before; otherwise every message is spooled (memory, then a private file).
/// </summary>
public static class ListenerPipeline
{
    public static MessagePipeline For(InterceptorOptions options, SuspensionRegistry suspensions, IMessageHolding holds, IReadOnlyList<IMessageStage> identity, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(identity);
        var stages = new List<IMessageStage> { new TraceHeaderStage(options.Relay.HeloName, options.Trace.IncludeProcess) };
        stages.AddRange(identity.OfType<FromPolicyStage>());
        if (options.Suspension.Action == SuspensionAction.Hold)
        {
            stages.Add(new SuspendedUserHoldStage(suspensions));
        }

        if (ScanPipeline.StageFor(options, logger, canHold: true) is { } scan)
        {
            stages.Add(scan);
        }

        stages.AddRange(identity.Where(s => s is not FromPolicyStage));

        var spools = stages.Any(s => s.NeedsWholeMessage) ? ScanPipeline.SpoolsFor(options) : null;
        return new MessagePipeline(stages, spools, holds);
    }
}
