using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Netfilter;
using Interceptor.Store;

namespace Interceptor.Daemon.Control;

/// <summary>
/// What the admin verbs read and change inside the running daemon; built once by `run`. Summaries and recent rows come
/// from <see cref="ReadModel"/> (the store); suspensions change through <see cref="Suspensions"/>, which writes the store.
/// </summary>
public sealed record AdminContext(
    InterceptorOptions Options,
    RulesetSpec Spec,
    RulesetManager Rules,
    IActivityReadModel ReadModel,
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

    /// <summary>Held messages and their release (hold-and-release).</summary>
    public Hold.HoldStore? Holds { get; init; }

    public Hold.HoldReleaser? Releaser { get; init; }
    /// <summary>The relay pool (issue 15); null when Relay.Smarthosts is empty.</summary>
    public Pool.DaemonPool? Pool { get; init; }

    /// <summary>Users held back after failures of ours (Suspension.LocalFailureLimit): `unblock` clears a user's.</summary>
    public LocalFailureBreaker? LocalFailures { get; init; }

    /// <summary>Which user owns which domain (issue 17): `domains` lists and checks them.</summary>
    public Core.Domains.IDomainMapSource? DomainMap { get; init; }
}
