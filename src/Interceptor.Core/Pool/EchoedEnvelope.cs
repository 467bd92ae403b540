using System.Text;

namespace Interceptor.Core.Pool;

/// <summary>
/// Takes out of an upstream's reply what the customer wrote into it: the envelope addresses a refusal quotes back
/// (Postfix's <c>553 5.7.1 &lt;S3150@x.example&gt;: Sender address rejected</c>). Her addresses are hers to choose, and
/// one named like a provider's block code (<c>S3150@…</c>, <c>TSS04@…</c>, <c>"blocked using"@…</c>) would otherwise
/// make the relay's own refusals read as a burn notice and take every user's relay out of service.
/// </summary>
/// <remarks>
/// Removed: every angle-bracketed span holding an <c>@</c> (a path as servers quote it), every other word holding one
/// (a bare address, quoted local parts and all), and the transaction's own domains where they stand alone. A provider's
/// notice names the sending IP, codes and URLs; none is an address, and none is the customer's to write. Only the first
/// <see cref="MaxChars"/> characters are looked at, as <see cref="BurnClassifier"/> looks at no more.
/// </remarks>
public static class EchoedEnvelope
{
    private const int MaxChars = 2 * BurnClassifier.MaxReplyChars;
    private const string Punctuation = "<>()[]{}\"',;:.!?";

    /// <param name="replyLines">The reply's lines as received.</param>
    /// <param name="paths">The transaction's reverse and forward paths as sent upstream (<c>&lt;a@b&gt;</c>).</param>
    public static IReadOnlyList<string> Strip(IReadOnlyList<string> replyLines, IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(replyLines);
        ArgumentNullException.ThrowIfNull(paths);
        var domains = DomainsOf(paths);
        var stripped = new List<string>(replyLines.Count);
        var looked = 0;
        foreach (var line in replyLines)
        {
            if (looked >= MaxChars)
            {
                break;
            }

            var text = line.Length > MaxChars - looked ? line[..(MaxChars - looked)] : line;
            looked += text.Length;
            stripped.Add(StripLine(text, domains));
        }

        return stripped;
    }

    /// <summary>
    /// Whether the reply names one of the transaction's addresses or domains in square brackets, as a DNS list check of
    /// them does (Postfix's rhsbl: <c>Sender address [her.example] blocked using dbl…</c>): then it refuses what she
    /// wrote, not the address mail leaves from. A path quoted in angle brackets says nothing either way: Postfix puts the
    /// recipient before every refusal, a downstream's block notice about the relay relayed back by address verification
    /// (<c>&lt;rcpt@…&gt;: Recipient address rejected: … said: 550 5.7.606 …</c>) included.
    /// </summary>
    public static bool Names(IReadOnlyList<string> replyLines, IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(replyLines);
        ArgumentNullException.ThrowIfNull(paths);
        var domains = DomainsOf(paths);
        var addresses = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var path in paths)
        {
            addresses.Add(path.Trim().TrimStart('<').TrimEnd('>'));
        }

        var domainLookup = domains.GetAlternateLookup<ReadOnlySpan<char>>();
        var addressLookup = addresses.GetAlternateLookup<ReadOnlySpan<char>>();
        var looked = 0;
        foreach (var line in replyLines)
        {
            for (var i = 0; i < line.Length && looked + i < MaxChars;)
            {
                if (char.IsWhiteSpace(line[i]))
                {
                    i++;
                    continue;
                }

                var end = WordEnd(line, i);
                var word = line.AsSpan(i, end - i).TrimEnd(".,;:!?");
                if (word.Length > 2 && word[0] == '[' && word[^1] == ']'
                    && (addressLookup.Contains(word[1..^1]) || domainLookup.Contains(word[1..^1])))
                {
                    return true;
                }

                i = end;
            }

            looked += line.Length;
        }

        return false;
    }

    /// <summary>
    /// A path as a server quotes it back in its internal form, quotes and escaping backslashes dropped:
    /// <c>&lt;"a&lt;S\3150 b"@x&gt;</c> comes back as <c>&lt;a&lt;S3150 b@x&gt;</c> (Postfix), which its sent form does not show.
    /// </summary>
    public static string InternalForm(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var text = new StringBuilder(path.Length);
        for (var i = 0; i < path.Length; i++)
        {
            if (path[i] == '\\' && i + 1 < path.Length)
            {
                text.Append(path[++i]);
            }
            else if (path[i] != '"')
            {
                text.Append(path[i]);
            }
        }

        return text.ToString();
    }

    private static HashSet<string> DomainsOf(IReadOnlyList<string> paths)
    {
        var domains = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var path in paths)
        {
            var address = path.Trim().TrimStart('<').TrimEnd('>');
            var at = address.LastIndexOf('@');
            if (at >= 0 && at < address.Length - 1)
            {
                domains.Add(address[(at + 1)..].TrimEnd('.'));
            }
        }

        return domains;
    }

    private static string StripLine(string line, HashSet<string> domains)
    {
        var kept = new StringBuilder(line.Length);
        var i = 0;
        while (i < line.Length)
        {
            if (char.IsWhiteSpace(line[i]))
            {
                kept.Append(line[i++]);
                continue;
            }

            var end = line[i] == '<' ? BracketEnd(line, i) : -1;
            if (end > 0)
            {
                i = end;
                continue;
            }

            end = WordEnd(line, i);
            var word = line.AsSpan(i, end - i);
            var core = word.Trim(Punctuation);
            if (!core.Contains('@') && !(core.Length > 0 && domains.GetAlternateLookup<ReadOnlySpan<char>>().Contains(core)))
            {
                kept.Append(word);
            }

            i = end;
        }

        return kept.ToString();
    }

    // The end of "<…@…>" starting at start, or -1 when it is not one. A quoted local part may hold spaces, brackets and
    // escaped quotes (<"a<S3150 b"@x>, <"x>\" S3150"@x>): inside quotes nothing ends the path.
    private static int BracketEnd(string line, int start)
    {
        for (var i = start + 1; i < line.Length; i++)
        {
            switch (line[i])
            {
                case '"':
                    i = QuoteEnd(line, i) - 1;
                    break;
                case '<':
                    return -1;
                case '>':
                    return line.AsSpan(start, i - start).Contains('@') ? i + 1 : -1;
            }
        }

        return -1;
    }

    // A word runs to the next white space; a quoted string inside it ("blocked using"@x) runs to its closing quote.
    private static int WordEnd(string line, int start)
    {
        var i = start;
        while (i < line.Length && !char.IsWhiteSpace(line[i]))
        {
            i = line[i] == '"' ? QuoteEnd(line, i) : i + 1;
        }

        return i;
    }

    // Just past the quote closing the one at start (a backslash escapes the next character), or the line's end.
    private static int QuoteEnd(string line, int start)
    {
        for (var i = start + 1; i < line.Length; i++)
        {
            if (line[i] == '\\')
            {
                i++;
            }
            else if (line[i] == '"')
            {
                return i + 1;
            }
        }

        return line.Length;
    }
}
