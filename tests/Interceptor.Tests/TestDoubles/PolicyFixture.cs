using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.TestDoubles;

/// <summary>
/// The daemon's real <see cref="MailPolicy"/> over the test doubles: the in-memory store, the recording kernel and a
/// clock. What session unit tests run with, so the combination that ships is what they test.
/// </summary>
internal sealed class PolicyFixture
{
    public PolicyFixture(LimitsOptions? limits = null, SuspensionOptions? suspension = null, TimeProvider? time = null, ILogger? logger = null)
    {
        Time = time ?? TimeProvider.System;
        Suspensions = new SuspensionRegistry(Store, Kernel, Kernel);
        suspension ??= new SuspensionOptions();
        var rules = new AutoSuspensionRules(suspension, Time);
        LocalFailures = new LocalFailureBreaker(suspension, Time);
        Policy = new MailPolicy(limits ?? new LimitsOptions(), new QuotaLedger(Time), rules, Suspensions, Store, Time, logger ?? NullLogger.Instance, localFailures: LocalFailures);
    }

    public MemoryStore Store { get; } = new();

    public RecordingKernel Kernel { get; } = new();

    public TimeProvider Time { get; }

    public SuspensionRegistry Suspensions { get; }

    public LocalFailureBreaker LocalFailures { get; }

    public MailPolicy Policy { get; }
}
