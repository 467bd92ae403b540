namespace Interceptor.Netfilter;

/// <summary>
/// Installs, checks and removes our one nftables table. Like a firewall bouncer it never trusts a
/// successful exit code alone: after every install it reads the table back and compares it with the spec.
/// </summary>
public sealed class RulesetManager(NftClient nft)
{
    private readonly NftClient nft = nft ?? throw new ArgumentNullException(nameof(nft));

    /// <summary>
    /// Renders the spec, replaces the table in one transaction, reads it back and verifies it.
    /// On failure the previous table (if any) is still in place when nft refused the script,
    /// and the new one is when only verification failed; either way interception never stops.
    /// </summary>
    /// <exception cref="NftNotInstalledException">nft is missing.</exception>
    /// <exception cref="NftCommandException">nft refused the script or could not list the table.</exception>
    /// <exception cref="RulesetVerificationException">The table read back differs from the spec.</exception>
    public async Task InstallAsync(RulesetSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var script = RulesetRenderer.Render(spec);
        await nft.ApplyAsync(script, cancellationToken);

        var differences = await FindDifferencesAsync(spec, cancellationToken);
        if (differences.Count > 0)
        {
            throw new RulesetVerificationException(spec.Table, differences);
        }
    }

    /// <summary>
    /// Why the kernel would refuse to install <paramref name="spec"/> (nft's message), checked without changing anything;
    /// null when it would take it.
    /// </summary>
    /// <exception cref="NftNotInstalledException">nft is missing.</exception>
    public async Task<string?> FindInstallProblemAsync(RulesetSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        try
        {
            await nft.CheckAsync(RulesetRenderer.Render(spec), cancellationToken);
            return null;
        }
        catch (NftCommandException e)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Adds <paramref name="uid"/> to the set <c>suspended_uids</c> of the installed table: from then on the kernel
    /// refuses that user's new connections to the intercepted ports. Only the set changes, so the table's
    /// counters and the rest of the ruleset stay as they are. Suspending a suspended user is not an error.
    /// The next <see cref="InstallAsync"/> replaces the set with its spec's <see cref="RulesetSpec.SuspendedUids"/>,
    /// so keep that list in step with these calls.
    /// </summary>
    /// <exception cref="NftCommandException">nft failed, for example because the table is not installed.</exception>
    public Task SuspendAsync(string table, uint uid, CancellationToken cancellationToken) =>
        nft.ApplyAsync(RulesetRenderer.RenderSuspend(table, uid), cancellationToken);

    /// <summary>
    /// Like <see cref="SuspendAsync(string, uint, CancellationToken)"/>, and in the same transaction replaces the set
    /// <c>suspended_subuids</c> with <paramref name="suspendedRanges"/>: the sub-UIDs of every suspended user.
    /// </summary>
    public Task SuspendAsync(string table, uint uid, IReadOnlyList<Core.Attribution.UidRange> suspendedRanges, CancellationToken cancellationToken) =>
        nft.ApplyAsync(RulesetRenderer.RenderSuspend(table, uid, suspendedRanges), cancellationToken);

    /// <summary>
    /// Like <see cref="UnsuspendAsync(string, uint, CancellationToken)"/>, and in the same transaction replaces the set
    /// <c>suspended_subuids</c> with <paramref name="suspendedRanges"/> (those of the users still suspended).
    /// </summary>
    public Task UnsuspendAsync(string table, uint uid, IReadOnlyList<Core.Attribution.UidRange> suspendedRanges, CancellationToken cancellationToken) =>
        nft.ApplyAsync(RulesetRenderer.RenderUnsuspend(table, uid, suspendedRanges), cancellationToken);

    /// <summary>
    /// Removes <paramref name="uid"/> from the set <c>suspended_uids</c>; its connections are intercepted again at once.
    /// Unsuspending a user who is not suspended is not an error (one transaction: add, then delete).
    /// </summary>
    /// <exception cref="NftCommandException">nft failed, for example because the table is not installed.</exception>
    public Task UnsuspendAsync(string table, uint uid, CancellationToken cancellationToken) =>
        nft.ApplyAsync(RulesetRenderer.RenderUnsuspend(table, uid), cancellationToken);

    /// <summary>The UIDs in the set <c>suspended_uids</c> of the installed table, sorted.</summary>
    /// <exception cref="NetfilterException">The table or the set does not exist, or the set holds something else than UIDs.</exception>
    public async Task<IReadOnlyList<uint>> ListSuspendedAsync(string table, CancellationToken cancellationToken)
    {
        using var listed = await nft.ListSetAsync(table, RulesetSpec.SuspendedSetName, cancellationToken);
        return (listed is null ? null : RulesetVerifier.SuspendedUids(listed, table))
            ?? throw new NetfilterException(
                $"The nftables table inet {table} or its set {RulesetSpec.SuspendedSetName} does not exist; smtp-interceptor installs it when it starts.");
    }

    /// <summary>
    /// Removes the table and its guard table, in one transaction (explicit uninstall only: stopping the daemon keeps
    /// them, fail closed). Idempotent.
    /// </summary>
    public Task RemoveAsync(string table, CancellationToken cancellationToken) =>
        nft.DeleteTablesAsync([table, RulesetSpec.GuardTableFor(table)], cancellationToken);

    /// <summary>
    /// What differs between the installed tables (ours and its guard) and the spec, one sentence each; empty when
    /// they match. A missing table is one difference, not an exception, so status commands can report it.
    /// </summary>
    public async Task<IReadOnlyList<string>> FindDifferencesAsync(RulesetSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var differences = new List<string>();
        using (var listed = await nft.ListTableAsync(spec.Table, cancellationToken))
        {
            differences.AddRange(listed is null ? [$"table inet {spec.Table} does not exist"] : RulesetVerifier.FindDifferences(listed, spec));
        }

        using (var guard = await nft.ListTableAsync(spec.GuardTable, cancellationToken))
        {
            differences.AddRange(guard is null ? [$"table inet {spec.GuardTable} does not exist"] : RulesetVerifier.FindGuardDifferences(guard, spec));
        }

        return differences;
    }

    /// <summary>True when the table exists and does exactly what the spec asks.</summary>
    public async Task<bool> IsInstalledAsExpectedAsync(RulesetSpec spec, CancellationToken cancellationToken) =>
        (await FindDifferencesAsync(spec, cancellationToken)).Count == 0;
}
