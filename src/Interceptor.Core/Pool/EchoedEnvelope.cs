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

    // The end of "<…@…>" starting at start (a quoted path may hold spaces), or -1 when it is not one.
    private static int BracketEnd(string line, int start)
    {
        var close = line.IndexOfAny(['<', '>'], start + 1);
        return close > 0 && line[close] == '>' && line.AsSpan(start, close - start).Contains('@') ? close + 1 : -1;
    }

    // A word runs to the next white space; a quoted string inside it ("blocked using"@x) runs to its closing quote.
    private static int WordEnd(string line, int start)
    {
        var i = start;
        while (i < line.Length && !char.IsWhiteSpace(line[i]))
        {
            if (line[i] == '"')
            {
                var close = line.IndexOf('"', i + 1);
                i = close < 0 ? line.Length : close + 1;
                continue;
            }

            i++;
        }

        return i;
    }
}
