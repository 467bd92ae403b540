using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>
/// Reads the parts of nft's JSON output (libnftables-json(5), schema version 1) that we need.
/// Unknown properties are ignored so handles, counters and additions in newer nft do not matter;
/// unknown match expressions in a rule are remembered, because they narrow what the rule covers.
/// </summary>
internal static class NftJson
{
    /// <summary>One entry of the <c>nftables</c> array that belongs to our table: "table", "set", "chain", "rule", …</summary>
    internal sealed record TableObject(string Kind, JsonElement Body);

    /// <summary>What a rule of our chain does, reduced to the facts the verifier checks.</summary>
    internal sealed record Rule(long? Handle, string? Comment)
    {
        public string? Nfproto { get; set; }

        public string? SkuidSet { get; set; }

        /// <summary>Inclusive destination port ranges; null when the rule does not match on tcp dport.</summary>
        public List<(int Low, int High)>? Dports { get; set; }

        public bool Accepts { get; set; }

        /// <summary>The port of a <c>redirect to :PORT</c> statement; 0 for a redirect that keeps the port.</summary>
        public int? RedirectPort { get; set; }

        /// <summary>A match we do not understand (another address, interface, negation): the rule may cover less.</summary>
        public bool HasOtherMatch { get; set; }

        public bool Covers(int port) => !HasOtherMatch && Dports is not null && Dports.Any(r => r.Low <= port && port <= r.High);

        public string Describe()
        {
            var action = RedirectPort is { } port ? $"redirects to port {port}" : Accepts ? "accepts" : "does something else";
            var comment = Comment is null ? string.Empty : $", comment \"{Comment}\"";
            return $"{action} (handle {Handle?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}{comment})";
        }
    }

    public static IReadOnlyList<TableObject> Objects(JsonDocument listed, string table)
    {
        var result = new List<TableObject>();
        if (listed.RootElement.ValueKind != JsonValueKind.Object
            || !listed.RootElement.TryGetProperty("nftables", out var array)
            || array.ValueKind != JsonValueKind.Array)
        {
            return result;
        }

        foreach (var entry in array.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            foreach (var property in entry.EnumerateObject())
            {
                var body = property.Value;
                if (body.ValueKind != JsonValueKind.Object || String(body, "family") != "inet")
                {
                    continue;
                }

                // A table names itself in "name"; everything inside it names its table in "table".
                var owner = property.Name == "table" ? String(body, "name") : String(body, "table");
                if (owner == table)
                {
                    result.Add(new TableObject(property.Name, body));
                }
            }
        }

        return result;
    }

    public static string? String(JsonElement body, string name) =>
        body.ValueKind == JsonValueKind.Object && body.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    /// <summary>
    /// The elements of a set. nft prints a plain array, but may print a lone element without the array,
    /// and wraps an element that carries a counter, timeout or comment as <c>{"elem": {"val": …}}</c>.
    /// </summary>
    public static IEnumerable<JsonElement> SetElements(JsonElement set)
    {
        if (!set.TryGetProperty("elem", out var elements))
        {
            return [];
        }

        var list = elements.ValueKind == JsonValueKind.Array ? elements.EnumerateArray().ToList() : [elements];
        return list.Select(Unwrap);
    }

    public static Rule ParseRule(JsonElement body, IReadOnlyList<TableObject> tableObjects)
    {
        long? handle = body.TryGetProperty("handle", out var h) && h.ValueKind == JsonValueKind.Number && h.TryGetInt64(out var number) ? number : null;
        var rule = new Rule(handle, String(body, "comment"));
        if (!body.TryGetProperty("expr", out var expressions) || expressions.ValueKind != JsonValueKind.Array)
        {
            rule.HasOtherMatch = true;
            return rule;
        }

        foreach (var expression in expressions.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Object))
        {
            foreach (var statement in expression.EnumerateObject())
            {
                switch (statement.Name)
                {
                    case "match":
                        ReadMatch(rule, statement.Value, tableObjects);
                        break;
                    case "accept":
                        rule.Accepts = true;
                        break;
                    case "redirect":
                        rule.RedirectPort = statement.Value.ValueKind == JsonValueKind.Object
                            && statement.Value.TryGetProperty("port", out var port) && Int(port, out var p) ? p : 0;
                        break;
                    case "counter":
                        break;
                    default:
                        // A verdict or statement we never write (drop, jump, log, …) makes it not our rule.
                        rule.HasOtherMatch = true;
                        break;
                }
            }
        }

        return rule;
    }

    private static void ReadMatch(Rule rule, JsonElement match, IReadOnlyList<TableObject> tableObjects)
    {
        var op = String(match, "op");
        if (op is not ("==" or "in") || !match.TryGetProperty("left", out var left) || !match.TryGetProperty("right", out var right))
        {
            rule.HasOtherMatch = true;
            return;
        }

        var metaKey = left.ValueKind == JsonValueKind.Object && left.TryGetProperty("meta", out var meta) ? String(meta, "key") : null;
        var isTcpDport = left.ValueKind == JsonValueKind.Object && left.TryGetProperty("payload", out var payload)
            && String(payload, "protocol") == "tcp" && String(payload, "field") == "dport";

        if (metaKey == "nfproto" && right.ValueKind == JsonValueKind.String)
        {
            rule.Nfproto = right.GetString();
        }
        else if (metaKey == "l4proto" && right.ValueKind == JsonValueKind.String && right.GetString() == "tcp")
        {
            // Implied by tcp dport; nft usually drops it from the listing anyway.
        }
        else if (metaKey == "skuid" && right.ValueKind == JsonValueKind.String && right.GetString()!.StartsWith('@'))
        {
            rule.SkuidSet = right.GetString()![1..];
        }
        else if (isTcpDport)
        {
            rule.Dports = PortRanges(right, tableObjects);
            rule.HasOtherMatch |= rule.Dports is null;
        }
        else
        {
            rule.HasOtherMatch = true;
        }
    }

    // A port is printed as a number, an anonymous set {"set": [...]}, a range {"range": [lo, hi]},
    // or a reference "@name" to a named set of the same table.
    private static List<(int Low, int High)>? PortRanges(JsonElement right, IReadOnlyList<TableObject> tableObjects)
    {
        var ranges = new List<(int, int)>();
        IEnumerable<JsonElement> items;
        if (right.ValueKind == JsonValueKind.Object && right.TryGetProperty("set", out var set))
        {
            items = set.ValueKind == JsonValueKind.Array ? set.EnumerateArray().Select(Unwrap).ToList() : [Unwrap(set)];
        }
        else if (right.ValueKind == JsonValueKind.String && right.GetString()!.StartsWith('@'))
        {
            var name = right.GetString()![1..];
            var named = tableObjects.FirstOrDefault(o => o.Kind == "set" && String(o.Body, "name") == name);
            if (named is null)
            {
                return null;
            }

            items = SetElements(named.Body).ToList();
        }
        else
        {
            items = [right];
        }

        foreach (var item in items)
        {
            if (Int(item, out var port))
            {
                ranges.Add((port, port));
            }
            else if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("range", out var range)
                && range.ValueKind == JsonValueKind.Array && range.GetArrayLength() == 2
                && Int(range[0], out var low) && Int(range[1], out var high))
            {
                ranges.Add((low, high));
            }
            else
            {
                return null;
            }
        }

        return ranges;
    }

    // TryGetInt32 throws on a non-number; the input is another program's output, so check first.
    private static bool Int(JsonElement element, out int value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt32(out value);
    }

    private static JsonElement Unwrap(JsonElement element) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("elem", out var inner)
            && inner.ValueKind == JsonValueKind.Object && inner.TryGetProperty("val", out var value)
            ? value
            : element;
}
