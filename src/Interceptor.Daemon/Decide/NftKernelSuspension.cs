using Interceptor.Core.Policy;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Decide;

/// <summary>Suspensions in the kernel: our table's suspended_uids set, changed without replacing the table.</summary>
public sealed class NftKernelSuspension(RulesetManager rules, string table) : IKernelSuspension
{
    public Task SuspendAsync(uint uid, CancellationToken cancellationToken) => rules.SuspendAsync(table, uid, cancellationToken);

    public Task UnsuspendAsync(uint uid, CancellationToken cancellationToken) => rules.UnsuspendAsync(table, uid, cancellationToken);
}
