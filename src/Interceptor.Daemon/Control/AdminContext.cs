using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Control;

/// <summary>What the admin verbs read and change inside the running daemon; built once by `run`.</summary>
public sealed record AdminContext(
    InterceptorOptions Options,
    RulesetSpec Spec,
    RulesetManager Rules,
    IStateStore Store,
    SuspensionRegistry Suspensions,
    AutoSuspensionRules AutoSuspension,
    QuotaLedger Ledger,
    Func<int> ActiveSessions,
    DateTimeOffset StartedAt,
    TimeProvider Time,
    string OwnerLookupMethod)
{
    /// <summary>Fills the spec's suspension sets, sub-UID ranges included.</summary>
    public Decide.SuspendedUidSets SuspendedSets { get; init; } = Decide.SuspendedUidSets.None;
}
