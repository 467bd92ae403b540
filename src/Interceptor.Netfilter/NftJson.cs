using System.Text.Json;

namespace Interceptor.Netfilter;

/// <summary>
/// Reads the parts of nft's JSON output (libnftables-json(5), schema version 1) that we need.
/// Unknown properties are ignored so handles, counters and additions in newer nft do not matter;
/// unknown match expressions in a rule are remembered, because they narrow what the rule covers.
/// </summary>
internal static partial class NftJson
{
    /// <summary>One entry of the <c>nftables</c> array that belongs to our table: "table", "set", "chain", "rule", …</summary>
    internal sealed record TableObject(string Kind, JsonElement Body);

    /// <summary>What a rule of our chains does, reduced to the facts the verifier checks.</summary>
    internal sealed partial record Rule(long? Handle, string? Comment)
    {
        public string? Nfproto { get; set; }

        public string? SkuidSet { get; set; }

        /// <summary>
        /// The set of a <c>meta skuid . ip daddr . tcp dport @SET</c> match (or <c>ip6 daddr</c>), null otherwise;
        /// <see cref="RouteFamily"/> says which address it matches.
        /// </summary>
        public string? RouteSet { get; set; }

        /// <summary>"ip" or "ip6" for a route match.</summary>
        public string? RouteFamily { get; set; }

        /// <summary>True when the rule matches <c>ct state new</c> (first packets only, like a NAT chain).</summary>
        public bool NewOnly { get; set; }

        /// <summary>
        /// True when the rule matches <c>ct state established,related</c> (or one of the two): packets of connections
        /// already open (a related connection's first packet is related too, but every rule of ours matches new only).
        /// Any rule with it but the bare pass also has <see cref="HasOtherMatch"/>.
        /// </summary>
        public bool OpenOnly { get; set; }

        /// <summary>Inclusive destination port ranges; null when the rule does not match on tcp dport.</summary>
        public List<(int Low, int High)>? Dports { get; set; }

        public bool Accepts { get; set; }

        /// <summary>A <c>reject</c> statement (any type; we write <c>with tcp reset</c>).</summary>
        public bool Rejects { get; set; }

        /// <summary>The packets counted by the rule's counter, null without a counter.</summary>
        public long? Packets { get; set; }

        /// <summary>The port of a <c>redirect to :PORT</c> statement; 0 for a redirect that keeps the port.</summary>
        public int? RedirectPort { get; set; }

        /// <summary>The sets of the rule's <c>meta skuid != @SET</c> matches (a uid in none of them), in rule order.</summary>
        public List<string> SkuidNotInSets { get; } = [];

        /// <summary>The uids of a <c>meta skuid A-B</c> or <c>meta skuid { A-B, C-D }</c> match, null otherwise.</summary>
        public List<Core.Attribution.UidRange>? SkuidRanges { get; set; }

        /// <summary>The uid of a <c>meta skuid N</c> match, null otherwise.</summary>
        public uint? SkuidValue { get; set; }

        /// <summary>A <c>limit rate over N/second burst B packets</c>, in the rule itself or in its meter; null without.</summary>
        public RateLimit? Limit { get; set; }

        /// <summary>The set a <c>update @SET { meta skuid … }</c> statement keeps its buckets in, null otherwise.</summary>
        public string? MeterSet { get; set; }

        /// <summary>The name of a <c>counter name "X"</c> statement, null for an anonymous counter or none.</summary>
        public string? CounterName { get; set; }

        /// <summary>A match we do not understand (another address, interface, negation): the rule may cover less.</summary>
        public bool HasOtherMatch { get; set; }

        /// <summary>The rule that lets packets of open connections leave a filter chain at once, and does nothing else.</summary>
        public bool IsOpenConnectionsPass =>
            OpenOnly && Accepts && !NewOnly && !Rejects && !HasOtherMatch && Nfproto is null && SkuidSet is null && RouteSet is null
            && Dports is null && RedirectPort is null && SkuidNotInSets.Count == 0 && SkuidRanges is null && SkuidValue is null
            && Limit is null && MeterSet is null;

        public bool Covers(int port) => !HasOtherMatch && Dports is not null && Dports.Any(r => r.Low <= port && port <= r.High);

        public string Describe()
        {
            var action = RedirectPort is { } port ? $"redirects to port {port}" : Accepts ? "accepts" : Rejects ? "rejects" : "does something else";
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
                        // A match after a log statement: the log would take packets the rule then does not refuse.
                        rule.HasOtherMatch |= rule.LogGroup is not null;
                        ReadMatch(rule, statement.Value, tableObjects);
                        break;
                    case "accept":
                        rule.Accepts = true;
                        break;
                    case "redirect":
                        rule.RedirectPort = statement.Value.ValueKind == JsonValueKind.Object
                            && statement.Value.TryGetProperty("port", out var port) && Int(port, out var p) ? p : 0;
                        break;
                    case "reject":
                        rule.Rejects = true;
                        break;
                    case "drop":
                        rule.Drops = true;
                        break;
                    case "limit":
                        rule.Limit = ReadLimit(statement.Value);
                        rule.HasOtherMatch |= rule.Limit is null;
                        break;
                    case "set":
                        ReadMeter(rule, statement.Value);
                        break;
                    case "log":
                        ReadLog(rule, statement.Value);
                        break;
                    case "counter" when statement.Value.ValueKind == JsonValueKind.String:
                        rule.CounterName = statement.Value.GetString();
                        break;
                    case "counter":
                        rule.Packets = statement.Value.ValueKind == JsonValueKind.Object
                            && statement.Value.TryGetProperty("packets", out var packets)
                            && packets.ValueKind == JsonValueKind.Number && packets.TryGetInt64(out var count) ? count : null;
                        break;
                    default:
                        // A verdict or statement we never write (drop, jump, log, …) makes it not our rule.
                        rule.HasOtherMatch = true;
                        break;
                }
            }
        }

        // nft 1.0.6 lists no `meta nfproto` that an address match implies in an inet table; a version that prints it must
        // not make a rule of ours look like another one (the watchdog would replace the table at every check).
        if (rule.Nfproto is { } family && family == ImpliedNfproto(rule) && rule.RedirectPort is null)
        {
            rule.Nfproto = null;
        }

        // One that remains narrows the rule to one family, which ours write only before a redirect: on an exempt, refusal
        // or route rule it would leave the other family's connections to the rules after it. Our redirects match no
        // route set either (a redirect narrowed to one would pass for the redirect).
        rule.HasOtherMatch |= (rule.Nfproto is not null && rule.RedirectPort is null) || (rule.RedirectPort is not null && rule.RouteSet is not null);

        MarkMetrics(rule);
        MarkStray(rule);

        // Only the bare pass may match open connections: on any other rule that match narrows it to packets our rules
        // are not about (a refusal or redirect for established packets refuses or redirects nothing), as every match
        // we do not understand does (attack review of the pass).
        rule.HasOtherMatch |= rule.OpenOnly && !rule.IsOpenConnectionsPass;
        return rule;
    }

    private static void ReadMatch(Rule rule, JsonElement match, IReadOnlyList<TableObject> tableObjects)
    {
        var op = String(match, "op");
        if (op == "!=" && IsMeta(match, "skuid") && match.TryGetProperty("right", out var notIn)
            && notIn.ValueKind == JsonValueKind.String && notIn.GetString()!.StartsWith('@'))
        {
            rule.SkuidNotInSets.Add(notIn.GetString()![1..]);
            return;
        }

        // meta skuid != U: the metrics endpoint's drop (NftJson.Metrics.cs); a second one is not ours.
        if (op == "!=" && IsMeta(match, "skuid") && match.TryGetProperty("right", out var notUid)
            && notUid.ValueKind == JsonValueKind.Number && notUid.TryGetUInt32(out var uidNot))
        {
            rule.HasOtherMatch |= rule.SkuidNotValue is not null;
            rule.SkuidNotValue = uidNot;
            return;
        }

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
            // A second one narrows the first (meta nfproto ipv6 meta nfproto ipv4 matches nothing): not one we write.
            rule.HasOtherMatch |= rule.Nfproto is not null;
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
        else if (metaKey == "skuid" && op == "==" && right.ValueKind == JsonValueKind.Number && right.TryGetUInt32(out var uid))
        {
            // A second one narrows the first (meta skuid 1 meta skuid 2 matches nothing): not one we write.
            rule.HasOtherMatch |= rule.SkuidValue is not null;
            rule.SkuidValue = uid;
        }
        else if (metaKey == "skuid" && op == "==" && right.ValueKind == JsonValueKind.Object)
        {
            rule.SkuidRanges = UidRangesOf(right);
            rule.HasOtherMatch |= rule.SkuidRanges is null;
        }
        else if (IsCtState(left) && IsOnly(right, "new"))
        {
            rule.NewOnly = true;
        }
        else if (IsCtState(left) && AreOpenStates(right))
        {
            rule.OpenOnly = true;
            rule.OpenStateCount = right.ValueKind == JsonValueKind.Array ? right.GetArrayLength() : 1;
        }
        else if (ReadStrayMatch(rule, left, right))
        {
            // tcp flags syn / syn,ack, ct state invalid,untracked: see NftJson.Strays.cs.
        }
        else if (ReadAddressMatch(rule, left, right))
        {
            // ip daddr A, ip6 saddr A, tcp sport P, oifname "lo", tcp flags & syn == syn: see NftJson.Metrics.cs.
        }
        else if (RouteFamilyOf(left) is { } family && right.ValueKind == JsonValueKind.String && right.GetString()!.StartsWith('@') && op == "==")
        {
            rule.RouteSet = right.GetString()![1..];
            rule.RouteFamily = family;
        }
        else if (isTcpDport)
        {
            // A second dport match narrows the first (tcp dport 1 tcp dport 25 matches nothing): not one we write.
            rule.HasOtherMatch |= rule.Dports is not null;
            rule.Dports = PortRanges(right, tableObjects);
            rule.HasOtherMatch |= rule.Dports is null;
        }
        else
        {
            rule.HasOtherMatch = true;
        }
    }

    // The family an ip (ipv4) or ip6 (ipv6) address match of the rule restricts it to; null without one.
    private static string? ImpliedNfproto(Rule rule) =>
        rule.Daddr?.AddressFamily switch
        {
            System.Net.Sockets.AddressFamily.InterNetwork => "ipv4",
            System.Net.Sockets.AddressFamily.InterNetworkV6 => "ipv6",
            _ => rule.RouteFamily switch { "ip" => "ipv4", "ip6" => "ipv6", _ => null },
        };

    private static bool IsCtState(JsonElement left) =>
        left.ValueKind == JsonValueKind.Object && left.TryGetProperty("ct", out var ct) && String(ct, "key") == "state";

    // nft prints one flag as a string and several as an array.
    private static bool IsOnly(JsonElement right, string value) =>
        (right.ValueKind == JsonValueKind.String && right.GetString() == value)
        || (right.ValueKind == JsonValueKind.Array && right.GetArrayLength() == 1
            && right[0].ValueKind == JsonValueKind.String && right[0].GetString() == value);

    // established and related, or one of them: none of the states our rules match (new), nor untracked or invalid.
    private static bool AreOpenStates(JsonElement right)
    {
        List<JsonElement> states = right.ValueKind == JsonValueKind.Array ? [.. right.EnumerateArray()] : [right];
        return states.Count > 0 && states.All(s => s.ValueKind == JsonValueKind.String && s.GetString() is "established" or "related");
    }

    // "ip" or "ip6" when the left side is exactly the concatenation meta skuid . ip[6] daddr . tcp dport.
    private static string? RouteFamilyOf(JsonElement left)
    {
        if (left.ValueKind != JsonValueKind.Object || !left.TryGetProperty("concat", out var parts)
            || parts.ValueKind != JsonValueKind.Array || parts.GetArrayLength() != 3)
        {
            return null;
        }

        var isSkuid = parts[0].ValueKind == JsonValueKind.Object && parts[0].TryGetProperty("meta", out var meta) && String(meta, "key") == "skuid";
        var family = parts[1].ValueKind == JsonValueKind.Object && parts[1].TryGetProperty("payload", out var address)
            && String(address, "field") == "daddr" ? String(address, "protocol") : null;
        var isDport = parts[2].ValueKind == JsonValueKind.Object && parts[2].TryGetProperty("payload", out var port)
            && String(port, "protocol") == "tcp" && String(port, "field") == "dport";
        return isSkuid && isDport && family is "ip" or "ip6" ? family : null;
    }

    /// <summary>
    /// The UIDs in a set of type uid, and the elements that are not one (reported by the verifier).
    /// </summary>
    public static (SortedSet<uint> Uids, List<JsonElement> Invalid) UidElements(JsonElement set)
    {
        var uids = new SortedSet<uint>();
        var invalid = new List<JsonElement>();
        foreach (var element in SetElements(set))
        {
            if (element.ValueKind == JsonValueKind.Number && element.TryGetUInt32(out var uid))
            {
                uids.Add(uid);
            }
            else
            {
                invalid.Add(element);
            }
        }

        return (uids, invalid);
    }

    /// <summary>
    /// The uids of an interval set: a single uid is printed as a number, a range as <c>{"range": [first, last]}</c>
    /// (or, by another nft version, as a prefix, which is not ours and reported invalid).
    /// </summary>
    public static (List<Core.Attribution.UidRange> Ranges, List<JsonElement> Invalid) UidRangeElements(JsonElement set)
    {
        var ranges = new List<Core.Attribution.UidRange>();
        var invalid = new List<JsonElement>();
        foreach (var element in SetElements(set))
        {
            if (TryUidRange(element, out var range))
            {
                ranges.Add(range);
            }
            else
            {
                invalid.Add(element);
            }
        }

        return (ranges, invalid);
    }

    /// <summary>One uid (a number) or uid range (<c>{"range": [first, last]}</c>) as nft prints it.</summary>
    private static bool TryUidRange(JsonElement element, out Core.Attribution.UidRange range)
    {
        range = default;
        if (element.ValueKind == JsonValueKind.Number && element.TryGetUInt32(out var uid) && uid <= Core.Attribution.UidRange.MaxUid)
        {
            range = new Core.Attribution.UidRange(uid, uid);
            return true;
        }

        if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty("range", out var bounds)
            && bounds.ValueKind == JsonValueKind.Array && bounds.GetArrayLength() == 2
            && bounds[0].ValueKind == JsonValueKind.Number && bounds[0].TryGetUInt32(out var first)
            && bounds[1].ValueKind == JsonValueKind.Number && bounds[1].TryGetUInt32(out var last)
            && first <= last && last <= Core.Attribution.UidRange.MaxUid)
        {
            range = new Core.Attribution.UidRange(first, last);
            return true;
        }

        return false;
    }

    /// <summary>
    /// The routes in a set of type uid . ipv4_addr|ipv6_addr . inet_service, printed as
    /// <c>{"concat": [uid, "address", port]}</c>, and the elements that are not one.
    /// </summary>
    public static (SortedSet<AllowedRoute> Routes, List<JsonElement> Invalid) RouteElements(JsonElement set)
    {
        var routes = new SortedSet<AllowedRoute>();
        var invalid = new List<JsonElement>();
        foreach (var element in SetElements(set))
        {
            if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty("concat", out var parts)
                && parts.ValueKind == JsonValueKind.Array && parts.GetArrayLength() == 3
                && parts[0].ValueKind == JsonValueKind.Number && parts[0].TryGetUInt32(out var uid)
                && parts[1].ValueKind == JsonValueKind.String && System.Net.IPAddress.TryParse(parts[1].GetString(), out var address)
                && Int(parts[2], out var port) && port is >= 1 and <= 65535)
            {
                routes.Add(new AllowedRoute(uid, address, port));
            }
            else
            {
                invalid.Add(element);
            }
        }

        return (routes, invalid);
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
