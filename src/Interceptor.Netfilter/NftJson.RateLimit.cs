using System.Text.Json;
using Interceptor.Core.Attribution;

namespace Interceptor.Netfilter;

// The statements of the connection rate limit (issue 19): a limit, a meter keyed on the uid, a `meta skuid` test.
internal static partial class NftJson
{
    /// <summary>A <c>limit</c> statement: <paramref name="Over"/> when it matches above the rate (<c>rate over</c>).</summary>
    internal sealed record RateLimit(long Rate, string? Per, long Burst, bool Over);

    private static bool IsMeta(JsonElement match, string key) =>
        match.TryGetProperty("left", out var left) && left.ValueKind == JsonValueKind.Object
        && left.TryGetProperty("meta", out var meta) && String(meta, "key") == key;

    private static RateLimit? ReadLimit(JsonElement limit)
    {
        if (limit.ValueKind != JsonValueKind.Object || !limit.TryGetProperty("rate", out var rate) || !rate.TryGetInt64(out var perUnit))
        {
            return null;
        }

        // nft leaves out a zero burst and a false "inv", and prints "rate_unit" only for bytes (which is not ours).
        var burst = limit.TryGetProperty("burst", out var b) && b.ValueKind == JsonValueKind.Number && b.TryGetInt64(out var n) ? n : 0;
        var over = limit.TryGetProperty("inv", out var inv) && inv.ValueKind == JsonValueKind.True;
        return limit.TryGetProperty("rate_unit", out _) ? null : new RateLimit(perUnit, String(limit, "per"), burst, over);
    }

    // `update @SET { meta skuid limit … }`: a meter keyed on the socket's uid. Anything else (another key, another
    // statement in the element, another operation) is not ours.
    private static void ReadMeter(Rule rule, JsonElement meter)
    {
        var set = String(meter, "set");
        var keyIsUid = meter.TryGetProperty("elem", out var key) && key.ValueKind == JsonValueKind.Object
            && key.TryGetProperty("meta", out var meta) && String(meta, "key") == "skuid";
        var statements = meter.TryGetProperty("stmt", out var s) && s.ValueKind == JsonValueKind.Array ? s.EnumerateArray().ToList() : [];
        var limit = statements.Count == 1 && statements[0].ValueKind == JsonValueKind.Object && statements[0].TryGetProperty("limit", out var l)
            ? ReadLimit(l)
            : null;
        if (String(meter, "op") != "update" || set is null || !set.StartsWith('@') || !keyIsUid || limit is null)
        {
            rule.HasOtherMatch = true;
            return;
        }

        rule.MeterSet = set[1..];
        rule.Limit = limit;
    }

    // The right side of `meta skuid A-B` ({"range": [A, B]}) or `meta skuid { A-B, C }` ({"set": [...]}); null for
    // anything else (a prefix, a map), which is not ours.
    private static List<UidRange>? UidRangesOf(JsonElement right)
    {
        var items = right.TryGetProperty("set", out var set)
            ? set.ValueKind == JsonValueKind.Array ? set.EnumerateArray().Select(Unwrap).ToList() : [Unwrap(set)]
            : [right];
        var ranges = new List<UidRange>();
        foreach (var item in items)
        {
            if (!TryUidRange(item, out var range))
            {
                return null;
            }

            ranges.Add(range);
        }

        return ranges.Count > 0 ? ranges : null;
    }
}
