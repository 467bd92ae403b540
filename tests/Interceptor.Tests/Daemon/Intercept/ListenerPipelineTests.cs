using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Daemon.Intercept;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Identity;
using Interceptor.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Intercept;

[TestFixture]
public sealed class ListenerPipelineTests
{
    private sealed class SigningStandIn : IMessageStage
    {
        public string Name => "dkim";

        public bool NeedsWholeMessage => true;

        public ReadOnlyMemory<byte> HeadersFor(MessageContext message) => ReadOnlyMemory<byte>.Empty;

        public ValueTask<StageVerdict> CompleteAsync(MessageContext message, IMessageSpool? spool, CancellationToken token) => ValueTask.FromResult(StageVerdict.Continue);
    }

    private sealed class NoHolds : IMessageHolding
    {
        public ValueTask<string> HoldAsync(MessageContext message, IMessageSpool spool, string stage, StageFinding finding, CancellationToken token) =>
            throw new IOException("not in this test");
    }

    [Test]
    public void The_from_policy_runs_before_any_hold_and_signing_stays_last()
    {
        // A released message goes out as it was held, past every later stage: a forged From held for a spam score (or a
        // suspended user's) and released would escape FromPolicy.Mode=Refuse if the policy came after the hold.
        // The spool directory under a test directory: the default is the package's /var/lib/smtp-interceptor, which a unit
        // test must not create on the host (the packaging test then finds it owned by root).
        var state = Directory.CreateTempSubdirectory("smtpi-pipeline-");
        var options = new InterceptorOptions
        {
            Suspension = new SuspensionOptions { Action = SuspensionAction.Hold },
            State = new StateOptions { Directory = state.FullName },
        };
        var fromPolicy = new FromPolicyStage(new FromPolicyOptions { Mode = FromPolicyMode.Refuse }, includeSubdomains: false, new FixedDomainMap(DomainMap.Empty), NullLogger.Instance);
        var fixture = new PolicyFixture();

        var pipeline = ListenerPipeline.For(options, fixture.Suspensions, new NoHolds(), [fromPolicy, new SigningStandIn()], NullLogger.Instance);

        try
        {
            Assert.That(pipeline.Stages.Select(s => s.Name), Is.EqualTo(new[] { "trace-header", "from-policy", "suspended-user", "dkim" }));
        }
        finally
        {
            state.Delete(recursive: true);
        }
    }
}
