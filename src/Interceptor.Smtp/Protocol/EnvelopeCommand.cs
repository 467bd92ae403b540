using Interceptor.Core.Replies;

namespace Interceptor.Smtp.Protocol;

/// <summary>
/// A parsed MAIL FROM or RCPT TO: the address (without angle brackets, source route dropped) and its
/// ESMTP parameters in the client's order. Upper-cased keywords, values as sent.
/// </summary>
public sealed record EnvelopeCommand(string Address, IReadOnlyList<KeyValuePair<string, string?>> Parameters)
{
    private const int MaxLocalPart = 64;
    private const int MaxDomain = 255;
    private const int MaxPath = 256;

    /// <summary>The path in angle brackets, as it goes upstream.</summary>
    public string Path => $"<{Address}>";

    public string? Parameter(string keyword)
    {
        foreach (var (key, value) in Parameters)
        {
            if (key == keyword)
            {
                return value;
            }
        }

        return null;
    }

    public bool HasParameter(string keyword) => Parameters.Any(p => p.Key == keyword);

    /// <summary>
    /// Parses the argument of MAIL ("FROM:&lt;a@b&gt; SIZE=10") or RCPT ("TO:&lt;c@d&gt;").
    /// Returns the command, or the reply that refuses it.
    /// </summary>
    public static (EnvelopeCommand? Command, SmtpReply? Refusal) Parse(string argument, string prefix, bool allowNullPath)
    {
        if (!argument.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return (null, new SmtpReply(501, "5.5.4", $"Syntax: {(prefix == "FROM:" ? "MAIL FROM:<address>" : "RCPT TO:<address>")}"));
        }

        var rest = argument[prefix.Length..].TrimStart();
        string path;
        string tail;
        if (rest.StartsWith('<'))
        {
            var close = FindClosingBracket(rest);
            if (close < 0)
            {
                return (null, new SmtpReply(501, "5.1.7", "Bad address syntax: missing '>'"));
            }

            path = rest[1..close];
            tail = rest[(close + 1)..];
        }
        else
        {
            // Legacy scripts write "MAIL FROM: user@host" without brackets; accept it as Postfix does.
            var space = rest.IndexOf(' ', StringComparison.Ordinal);
            path = space < 0 ? rest : rest[..space];
            tail = space < 0 ? "" : rest[space..];
        }

        var address = StripSourceRoute(path);
        var refusal = CheckAddress(address, allowNullPath);
        if (refusal is not null)
        {
            return (null, refusal);
        }

        var parameters = new List<KeyValuePair<string, string?>>();
        foreach (var token in tail.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = token.IndexOf('=', StringComparison.Ordinal);
            var keyword = (equals < 0 ? token : token[..equals]).ToUpperInvariant();
            if (keyword.Length == 0 || !keyword.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            {
                return (null, new SmtpReply(501, "5.5.4", $"Bad parameter syntax: {token}"));
            }

            parameters.Add(new(keyword, equals < 0 ? null : token[(equals + 1)..]));
        }

        return (new EnvelopeCommand(address, parameters), null);
    }

    /// <summary>The index of the '>' closing the path that <paramref name="text"/> opens with '&lt;' (quotes and escapes
    /// respected), or -1.</summary>
    internal static int FindClosingBracket(string text)
    {
        var quoted = false;
        for (var i = 1; i < text.Length; i++)
        {
            switch (text[i])
            {
                case '\\' when quoted:
                    i++;
                    break;
                case '"':
                    quoted = !quoted;
                    break;
                case '>' when !quoted:
                    return i;
            }
        }

        return -1;
    }

    /// <summary>RFC 5321 4.1.2: a source route ("@a,@b:user@c") must be accepted and ignored.</summary>
    private static string StripSourceRoute(string path)
    {
        if (!path.StartsWith('@'))
        {
            return path;
        }

        var colon = path.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? path : path[(colon + 1)..];
    }

    private static SmtpReply? CheckAddress(string address, bool allowNullPath)
    {
        if (address.Length == 0)
        {
            return allowNullPath ? null : new SmtpReply(501, "5.1.3", "Bad recipient address syntax: empty address");
        }

        if (address.Length > MaxPath)
        {
            return new SmtpReply(501, "5.1.3", $"Bad address syntax: path longer than {MaxPath} characters");
        }

        var at = address.LastIndexOf('@');
        if (at <= 0 || at == address.Length - 1)
        {
            // "postmaster" alone is legal as a recipient (RFC 5321 4.5.1).
            return address.Equals("postmaster", StringComparison.OrdinalIgnoreCase)
                ? null
                : new SmtpReply(501, "5.1.3", $"Bad address syntax: {address} is not local-part@domain");
        }

        var localPart = address[..at];
        var domain = address[(at + 1)..];
        if (localPart.Length > MaxLocalPart)
        {
            return new SmtpReply(501, "5.1.3", $"Bad address syntax: local part longer than {MaxLocalPart} characters");
        }

        if (domain.Length > MaxDomain)
        {
            return new SmtpReply(501, "5.1.3", $"Bad address syntax: domain longer than {MaxDomain} characters");
        }

        var quoted = localPart.Length >= 2 && localPart.StartsWith('"') && localPart.EndsWith('"');
        var unquoted = quoted ? domain : address;
        if (address.Any(char.IsControl) || unquoted.Any(c => c is ' ' or '<' or '>'))
        {
            return new SmtpReply(501, "5.1.3", "Bad address syntax: forbidden character in address");
        }

        // Percent-hack and bang paths ask the next hop to relay further: an open-relay trick.
        if (!quoted && (localPart.Contains('%', StringComparison.Ordinal) || localPart.Contains('!', StringComparison.Ordinal)))
        {
            return new SmtpReply(553, "5.1.3", "Address with '%' or '!' routing is not accepted");
        }

        return null;
    }
}
