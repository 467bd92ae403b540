using System.Net;
using System.Net.Sockets;

namespace Interceptor.Daemon.Domains;

/// <summary>RFC 7208's results, as far as <see cref="SpfEvaluator"/> can tell them.</summary>
public enum SpfVerdict
{
    Pass,
    Fail,
    SoftFail,
    Neutral,

    /// <summary>No SPF record.</summary>
    None,

    /// <summary>The record is wrong: two of them, an unknown mechanism, a bad address, an include without a record.</summary>
    PermError,

    /// <summary>DNS gave no answer (timeout, SERVFAIL).</summary>
    TempError,
}

public sealed record SpfResult(SpfVerdict Verdict, string Detail);

/// <summary>
/// Whether a domain's SPF record authorises an address, for the `domains --check` report. Evaluated: <c>ip4:</c> and
/// <c>ip6:</c> (with CIDR lengths), <c>all</c> with its qualifier, <c>include:</c> and <c>redirect=</c> down to
/// <see cref="MaxDepth"/> levels. Not evaluated (named in the result when nothing else decided): <c>a</c>, <c>mx</c>,
/// <c>ptr</c>, <c>exists</c> and anything with a macro (<c>%{…}</c>): they need the sender's context or more lookups
/// than a report should make; a record relying on them is reported, not guessed at.
/// </summary>
public sealed class SpfEvaluator(ITxtLookup dns)
{
    /// <summary>How many include:/redirect= hops are followed from the domain's own record.</summary>
    public const int MaxDepth = 2;

    public Task<SpfResult> EvaluateAsync(string domain, IPAddress address, CancellationToken cancellationToken) =>
        EvaluateAsync(domain, address, 0, cancellationToken);

    /// <summary>A TXT string that is an SPF record ("v=spf1" alone or followed by a space).</summary>
    public static bool IsSpfRecord(string text) =>
        text.Equals("v=spf1", StringComparison.OrdinalIgnoreCase) || text.StartsWith("v=spf1 ", StringComparison.OrdinalIgnoreCase);

    private async Task<SpfResult> EvaluateAsync(string domain, IPAddress address, int depth, CancellationToken cancellationToken)
    {
        var answer = await dns.TxtAsync(domain, cancellationToken);
        if (answer.Error is { } error)
        {
            return new(SpfVerdict.TempError, $"dns: {error} ({domain})");
        }

        var records = answer.Records.Where(IsSpfRecord).ToList();
        return records.Count switch
        {
            0 => new(SpfVerdict.None, $"no SPF record at {domain}"),
            1 => await EvaluateRecordAsync(domain, records[0], address, depth, cancellationToken),
            _ => new(SpfVerdict.PermError, $"{records.Count} SPF records at {domain} (there must be one)"),
        };
    }

    private async Task<SpfResult> EvaluateRecordAsync(string domain, string record, IPAddress address, int depth, CancellationToken cancellationToken)
    {
        string? redirect = null;
        var unevaluated = new List<string>();
        foreach (var term in record.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            var equals = term.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && term.IndexOfAny([':', '/']) is var separator && (separator < 0 || separator > equals))
            {
                // Modifiers: redirect= is followed once no mechanism matched; exp= and unknown ones do not decide anything.
                if (term[..equals].Equals("redirect", StringComparison.OrdinalIgnoreCase))
                {
                    redirect = term[(equals + 1)..];
                }

                continue;
            }

            var qualified = term[0] is '+' or '-' or '~' or '?';
            var qualifier = qualified ? term[0] : '+';
            var mechanism = qualified ? term[1..] : term;
            var end = mechanism.IndexOfAny([':', '/']);
            var name = (end < 0 ? mechanism : mechanism[..end]).ToLowerInvariant();
            var value = end >= 0 && mechanism[end] == ':' ? mechanism[(end + 1)..] : "";
            if (term.Contains('%', StringComparison.Ordinal))
            {
                unevaluated.Add(term);
                continue;
            }

            switch (name)
            {
                case "all":
                    return Qualified(qualifier, $"{address} is not listed; {term} at {domain}", unevaluated);
                case "ip4" or "ip6":
                    if (!TryNetwork(value, name == "ip4" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6, out var network))
                    {
                        return new(SpfVerdict.PermError, $"{term} at {domain} is not a valid {name} network");
                    }

                    if (network.Contains(address))
                    {
                        return Qualified(qualifier, $"{address} matches {term} at {domain}", []);
                    }

                    break;
                case "include":
                    if (depth >= MaxDepth)
                    {
                        unevaluated.Add($"{term} (deeper than {MaxDepth} levels)");
                        break;
                    }

                    var inner = await EvaluateAsync(value, address, depth + 1, cancellationToken);
                    switch (inner.Verdict)
                    {
                        case SpfVerdict.Pass:
                            return Qualified(qualifier, $"via {term} at {domain}: {inner.Detail}", []);
                        case SpfVerdict.TempError or SpfVerdict.PermError:
                            return inner;
                        case SpfVerdict.None:
                            return new(SpfVerdict.PermError, $"{term} at {domain}: {inner.Detail}");
                    }

                    break;
                case "a" or "mx" or "ptr" or "exists":
                    unevaluated.Add(term);
                    break;
                default:
                    return new(SpfVerdict.PermError, $"unknown mechanism {term} at {domain}");
            }
        }

        if (redirect is not null)
        {
            if (depth >= MaxDepth)
            {
                unevaluated.Add($"redirect={redirect} (deeper than {MaxDepth} levels)");
            }
            else
            {
                var target = await EvaluateAsync(redirect, address, depth + 1, cancellationToken);
                return target.Verdict == SpfVerdict.None ? new(SpfVerdict.PermError, $"redirect={redirect} at {domain}: {target.Detail}") : target;
            }
        }

        return Qualified('?', $"no mechanism at {domain} matches {address}", unevaluated);
    }

    private static SpfResult Qualified(char qualifier, string detail, List<string> unevaluated)
    {
        var verdict = qualifier switch
        {
            '-' => SpfVerdict.Fail,
            '~' => SpfVerdict.SoftFail,
            '?' => SpfVerdict.Neutral,
            _ => SpfVerdict.Pass,
        };
        return new(verdict, unevaluated.Count == 0 || verdict == SpfVerdict.Pass ? detail : $"{detail} (not evaluated: {string.Join(' ', unevaluated)})");
    }

    private static bool TryNetwork(string text, AddressFamily family, out IPNetwork network)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var host = slash < 0 ? text : text[..slash];
        network = default;
        if (!IPAddress.TryParse(host, out var address) || address.AddressFamily != family)
        {
            return false;
        }

        var bits = family == AddressFamily.InterNetwork ? 32 : 128;
        if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out bits)
            || bits > (family == AddressFamily.InterNetwork ? 32 : 128)))
        {
            return false;
        }

        // The base address need not be the network's first: "ip4:192.0.2.7/24" means 192.0.2.0/24.
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(bits - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }

        network = new IPNetwork(new IPAddress(bytes), bits);
        return true;
    }
}
