using System.Text.Json;
using Interceptor.Core.Attribution;

namespace Interceptor.Netfilter;

public static partial class RulesetVerifier
{
    // An interval set of sub-UIDs (of suspended users, or all of them for the rate limit), compared by the uids it covers (nft may list adjacent
    // ranges apart or joined, depending on how they were added).
    private static void CheckUidRangeSet(
        IReadOnlyList<NftJson.TableObject> objects, string name, IReadOnlyList<UidRange> expected, string ifDifferent, List<string> differences)
    {
        var set = FindSet(objects, name);
        if (set is null)
        {
            differences.Add($"set {name} is missing");
            return;
        }

        Expect(differences, $"set {name}: type", NftJson.String(set.Body, "type"), "uid");
        var flags = set.Body.TryGetProperty("flags", out var f) ? f : default;
        var isInterval = flags.ValueKind switch
        {
            JsonValueKind.Array => flags.EnumerateArray().Any(e => e.ValueKind == JsonValueKind.String && e.GetString() == "interval"),
            JsonValueKind.String => flags.GetString() == "interval",
            _ => false,
        };
        if (!isInterval)
        {
            differences.Add($"set {name} is not an interval set (flags interval): it cannot hold uid ranges");
        }

        var (listed, invalid) = NftJson.UidRangeElements(set.Body);
        foreach (var element in invalid)
        {
            differences.Add($"set {name} holds an element that is not a uid or uid range: {Show(element)}");
        }

        var installed = UidRange.Merge(listed);
        var wanted = UidRange.Merge(expected);
        if (!installed.SequenceEqual(wanted))
        {
            differences.Add($"{RangesHeld(name)}{string.Join(", ", installed)}], expected [{string.Join(", ", wanted)}]: "
                + ifDifferent);
        }
    }
}
