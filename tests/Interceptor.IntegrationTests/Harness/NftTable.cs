using System.Globalization;
using System.Text.Json;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Reads the daemon's nft table inside a test namespace the way an admin's script would: `nft -j list …`.
/// Rules are found by chain and comment (the comments are the documented contract in nftables/README.md).
/// </summary>
public static class NftTable
{
    public const string Name = "smtp_interceptor";
    public const string FilterChain = "output_filter";

    /// <summary>Comment prefix of the filter rule that refuses suspended users.</summary>
    public const string SuspendedRule = "Suspended users";

    /// <summary>Comment prefix of the filter rule that refuses blocked ports.</summary>
    public const string BlockedPortsRule = "Blocked ports";

    /// <summary>The UIDs in the set suspended_uids, sorted; fails the test when the set cannot be listed.</summary>
    public static async Task<IReadOnlyList<uint>> SuspendedUidsAsync(NetworkNamespace ns)
    {
        var listing = await ns.RunAsync("nft", ["-j", "list", "set", "inet", Name, "suspended_uids"]);
        Assert.That(listing.Succeeded, Is.True, "nft -j list set failed:\n" + listing.Describe());
        using var document = JsonDocument.Parse(listing.Stdout);
        var uids = new List<uint>();
        foreach (var item in document.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("set", out var set) || !set.TryGetProperty("elem", out var elements))
            {
                continue;
            }

            foreach (var element in elements.EnumerateArray())
            {
                // A plain element is a number; one with a counter or comment is {"elem": {"val": N, …}}.
                var value = element.ValueKind == JsonValueKind.Object && element.TryGetProperty("elem", out var wrapped)
                    ? wrapped.GetProperty("val")
                    : element;
                uids.Add(value.ValueKind == JsonValueKind.Number
                    ? value.GetUInt32()
                    : uint.Parse(value.GetString() ?? "", NumberStyles.None, CultureInfo.InvariantCulture));
            }
        }

        uids.Sort();
        return uids;
    }

    /// <summary>The packets counted by the one rule of <paramref name="chain"/> whose comment starts with <paramref name="commentPrefix"/>.</summary>
    public static async Task<long> RuleCounterAsync(NetworkNamespace ns, string commentPrefix, string chain = FilterChain)
    {
        var listing = await ns.RunAsync("nft", ["-j", "list", "table", "inet", Name]);
        Assert.That(listing.Succeeded, Is.True, "nft -j list table failed:\n" + listing.Describe());
        using var document = JsonDocument.Parse(listing.Stdout);
        var counters = new List<long>();
        foreach (var item in document.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("rule", out var rule)
                || rule.GetProperty("chain").GetString() != chain
                || !rule.TryGetProperty("comment", out var comment)
                || comment.GetString()?.StartsWith(commentPrefix, StringComparison.Ordinal) != true)
            {
                continue;
            }

            foreach (var expression in rule.GetProperty("expr").EnumerateArray())
            {
                if (expression.TryGetProperty("counter", out var counter))
                {
                    counters.Add(counter.GetProperty("packets").GetInt64());
                }
            }
        }

        Assert.That(counters, Has.Count.EqualTo(1), $"expected one counter on the rule '{commentPrefix}…' in chain {chain}:\n{listing.Stdout}");
        return counters[0];
    }

    /// <summary>`nft list …` in readable form, for failure messages and containment checks.</summary>
    public static async Task<string> ListAsync(NetworkNamespace ns, params string[] what)
    {
        var listing = await ns.RunAsync("nft", ["list", .. what]);
        Assert.That(listing.Succeeded, Is.True, listing.Describe());
        return listing.Stdout;
    }
}
