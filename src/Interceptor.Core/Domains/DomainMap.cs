using Interceptor.Core.Options;

namespace Interceptor.Core.Domains;

/// <summary>A line of a domain map that could not be read: its number (from 1) and why.</summary>
public sealed record MalformedDomainLine(int Number, string Problem);

/// <summary>
/// Which Unix user owns which mail domains, read from a hosting panel's map (cPanel <c>/etc/userdomains</c>, DirectAdmin
/// <c>/etc/virtual/domainowners</c>: <c>domain: user</c>) or our own file (<c>user: domain domain …</c>). Domains are
/// compared in lower case without a trailing dot. Immutable: a reload builds a new map.
/// </summary>
public sealed class DomainMap
{
    private readonly Dictionary<string, string> _ownerOf;

    private DomainMap(Dictionary<string, string> ownerOf, IReadOnlyList<MalformedDomainLine> malformed)
    {
        _ownerOf = ownerOf;
        Malformed = malformed;
    }

    /// <summary>The longest domain name (RFC 1035, in its text form without the final dot).</summary>
    public const int MaxNameLength = 253;

    public static DomainMap Empty { get; } = new(new Dictionary<string, string>(StringComparer.Ordinal), []);

    /// <summary>Lines skipped while reading (logged by whoever loaded the map).</summary>
    public IReadOnlyList<MalformedDomainLine> Malformed { get; }

    public int Count => _ownerOf.Count;

    /// <summary>Each user's domains, sorted.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ByUser() =>
        _ownerOf.GroupBy(p => p.Value, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(p => p.Key).Order(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);

    /// <summary>
    /// The user that owns <paramref name="domain"/>: its own entry, else (with <paramref name="includeSubdomains"/>) the
    /// nearest parent's. Null when nobody does.
    /// </summary>
    public string? OwnerOf(string domain, bool includeSubdomains)
    {
        // No domain is longer; a From: of 64 KB of one-letter labels under her own domain would cost a copy of the rest
        // of the name at each label here, and the DKIM key search walks the parents again (cubic: hours a message).
        var name = Normalise(domain);
        if (name.Length is 0 or > MaxNameLength)
        {
            return null;
        }

        while (true)
        {
            if (_ownerOf.TryGetValue(name, out var owner))
            {
                return owner;
            }

            var dot = name.IndexOf('.', StringComparison.Ordinal);
            if (!includeSubdomains || dot < 0)
            {
                return null;
            }

            name = name[(dot + 1)..];
        }
    }

    public bool Owns(string user, string domain, bool includeSubdomains) =>
        string.Equals(OwnerOf(domain, includeSubdomains), user, StringComparison.Ordinal);

    /// <summary>
    /// Lower case, no trailing dot, no surrounding space, and an internationalised name in its ASCII form (bücher.example
    /// as xn--bcher-kva.example): panels list IDNs in that form, while a From: of mail sent with SMTPUTF8, or a map line,
    /// may write them in Unicode. The daemon runs with invariant globalization, so this is Punycode with lower-casing and
    /// the IDNA dots only, not UTS 46's full mapping: a fullwidth ｂ stays a name of its own (owned by nobody, so refused
    /// under FromPolicy Refuse and never signed). A Unicode name that is no valid IDN stays as written and matches no
    /// entry (entries are ASCII).
    /// </summary>
    public static string Normalise(string domain)
    {
        // Lower case first: .NET's mapping refuses upper-case letters outside ASCII.
        var name = domain.Trim().TrimEnd('.').ToLowerInvariant();

        // Only a name that can be one: the mapping checks a label's length only after encoding it, which costs the label's
        // length times its distinct characters (40,000 CJK characters: 0.8 s here; a From: of a megabyte of them, which the
        // header reader allows, about half a minute a call, and a message stage makes several). MaxNameLength bounds it to
        // microseconds.
        if (name.Length <= MaxNameLength && !System.Text.Ascii.IsValid(name))
        {
            try
            {
                name = new System.Globalization.IdnMapping().GetAscii(name).TrimEnd('.');
            }
            catch (ArgumentException)
            {
                // Not an IDN (an empty label, a disallowed character): kept, so it names nobody's domain.
            }
        }

        return name;
    }

    /// <summary>Reads a map in <paramref name="source"/>'s format; bad lines are skipped and listed in <see cref="Malformed"/>.</summary>
    public static DomainMap Parse(DomainSource source, TextReader reader)
    {
        var ownerOf = new Dictionary<string, string>(StringComparer.Ordinal);
        var malformed = new List<MalformedDomainLine>();
        var number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            var text = line.Trim();
            if (text.Length == 0 || text.StartsWith('#'))
            {
                continue;
            }

            var colon = text.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                malformed.Add(new(number, "no \"name: value\" form"));
                continue;
            }

            var left = text[..colon].Trim();
            var right = text[(colon + 1)..].Trim();
            var problem = source == DomainSource.File ? AddUserLine(ownerOf, left, right) : AddPanelLine(ownerOf, left, right);
            if (problem is not null)
            {
                malformed.Add(new(number, problem));
            }
        }

        return new DomainMap(ownerOf, malformed);
    }

    // cPanel and DirectAdmin: "domain: user". cPanel's "*: nobody" is the catch-all, nobody's domain.
    private static string? AddPanelLine(Dictionary<string, string> ownerOf, string domain, string user)
    {
        if (domain == "*")
        {
            return null;
        }

        if (!IsUserName(user))
        {
            return $"\"{user}\" is not a user name";
        }

        return Add(ownerOf, domain, user);
    }

    // Ours: "user: domain domain ...".
    private static string? AddUserLine(Dictionary<string, string> ownerOf, string user, string domains)
    {
        if (!IsUserName(user))
        {
            return $"\"{user}\" is not a user name";
        }

        var names = domains.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries);
        if (names.Length == 0)
        {
            return $"user {user} lists no domain";
        }

        return names.Select(d => Add(ownerOf, d, user)).FirstOrDefault(p => p is not null);
    }

    private static string? Add(Dictionary<string, string> ownerOf, string domain, string user)
    {
        var name = Normalise(domain);
        if (!IsDomainName(name))
        {
            return $"\"{domain}\" is not a domain name";
        }

        // Two owners for one domain: the first keeps it (a later line must not take a domain over), the clash is named.
        if (ownerOf.TryGetValue(name, out var owner) && owner != user)
        {
            return $"{name} is already owned by {owner}";
        }

        ownerOf[name] = user;
        return null;
    }

    private static bool IsUserName(string text) =>
        text.Length is > 0 and <= 64 && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') && text[0] != '-';

    /// <summary>Letters, digits, hyphens and dots, labels of 1-63, at least two labels.</summary>
    public static bool IsDomainName(string name)
    {
        if (name.Length is 0 or > MaxNameLength)
        {
            return false;
        }

        var labels = name.Split('.');
        return labels.Length >= 2 && labels.All(l => l.Length is > 0 and <= 63 && l[0] != '-' && l[^1] != '-'
            && l.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'));
    }
}

/// <summary>The current domain map (reloaded by the daemon when its file changes).</summary>
public interface IDomainMapSource
{
    DomainMap Current { get; }
}

/// <summary>A fixed map (tests, and <c>Domains.Source</c> None).</summary>
public sealed class FixedDomainMap(DomainMap map) : IDomainMapSource
{
    public DomainMap Current => map;
}
