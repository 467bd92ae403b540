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

    /// <summary>Removes the table (explicit uninstall only: stopping the daemon keeps it, fail closed). Idempotent.</summary>
    public Task RemoveAsync(string table, CancellationToken cancellationToken) => nft.DeleteTableAsync(table, cancellationToken);

    /// <summary>
    /// What differs between the installed table and the spec, one sentence each; empty when it matches.
    /// A missing table is one difference, not an exception, so status commands can report it.
    /// </summary>
    public async Task<IReadOnlyList<string>> FindDifferencesAsync(RulesetSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        using var listed = await nft.ListTableAsync(spec.Table, cancellationToken);
        return listed is null
            ? [$"table inet {spec.Table} does not exist"]
            : RulesetVerifier.FindDifferences(listed, spec);
    }

    /// <summary>True when the table exists and does exactly what the spec asks.</summary>
    public async Task<bool> IsInstalledAsExpectedAsync(RulesetSpec spec, CancellationToken cancellationToken) =>
        (await FindDifferencesAsync(spec, cancellationToken)).Count == 0;
}
