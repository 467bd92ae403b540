using Interceptor.Core.Policy;
using Interceptor.Netfilter;

namespace Interceptor.Daemon.Decide;

/// <summary>
/// Suspensions in the kernel: our table's suspended_uids set, changed without replacing the table, and with
/// <paramref name="sets"/> the suspended_subuids set, refilled in the same transaction with the subordinate uids of
/// every suspended user (<paramref name="suspendedUids"/>, the registry, which already holds the change).
/// </summary>
public sealed class NftKernelSuspension(RulesetManager rules, string table, SuspendedUidSets? sets = null, Func<IEnumerable<uint>>? suspendedUids = null)
    : IKernelSuspension, IDisposable
{
    // Each change computes the whole range set from the registry; one at a time, so the last one applied is
    // computed from the latest registry and a slower earlier nft run cannot overwrite it with an older list.
    private readonly SemaphoreSlim _changing = new(1, 1);

    public Task SuspendAsync(uint uid, CancellationToken cancellationToken) => ChangeAsync(uid, suspend: true, cancellationToken);

    public Task UnsuspendAsync(uint uid, CancellationToken cancellationToken) => ChangeAsync(uid, suspend: false, cancellationToken);

    private async Task ChangeAsync(uint uid, bool suspend, CancellationToken cancellationToken)
    {
        if (sets is null || suspendedUids is null)
        {
            await (suspend ? rules.SuspendAsync(table, uid, cancellationToken) : rules.UnsuspendAsync(table, uid, cancellationToken));
            return;
        }

        await _changing.WaitAsync(cancellationToken);
        try
        {
            var others = suspendedUids().Where(u => u != uid);
            var ranges = sets.RangesOf(suspend ? others.Append(uid) : others);
            await (suspend
                ? rules.SuspendAsync(table, uid, ranges, cancellationToken)
                : rules.UnsuspendAsync(table, uid, ranges, cancellationToken));
        }
        finally
        {
            _changing.Release();
        }
    }

    public void Dispose() => _changing.Dispose();
}
