using System.Text;
using System.Text.RegularExpressions;
using Interceptor.Core.Options;

namespace Interceptor.Core.Pool;

/// <summary>
/// Tells whether an SMTP reply says "the sending address is blocked" (<c>Burn.Patterns</c>), and which pattern said so.
/// </summary>
/// <remarks>
/// A multi-line reply is matched as one text: providers wrap their sentences across lines and repeat the codes on each
/// (Gmail's <c>421-4.7.0 ... unusual rate of\r\n421-4.7.0 unsolicited mail ...</c>), so the codes of every line are
/// dropped and the lines joined with a space; the first line keeps its enhanced status code, which some patterns need
/// (Microsoft's <c>5.7.606</c>). Patterns run with a timeout: a reply is remote input, and a pattern an admin wrote
/// may backtrack badly. A timed-out match counts as no match.
/// </remarks>
public sealed partial class BurnClassifier
{
    /// <summary>Longest reply text looked at; a provider's block notice is a few hundred bytes.</summary>
    public const int MaxReplyChars = 4096;

    private static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(100);
    private readonly (string Label, Regex Regex)[] _patterns;

    public BurnClassifier(IReadOnlyList<BurnPatternOptions> patterns)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        _patterns = patterns
            .Select(p => (p.Label, new Regex(p.Pattern, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, MatchTimeout)))
            .ToArray();
    }

    /// <summary>The label of the first pattern that matches the reply, or null.</summary>
    /// <param name="replyLines">The reply as received, one line each, with their codes (<c>550-5.7.1 text</c>).</param>
    public string? Classify(IReadOnlyList<string> replyLines)
    {
        var text = ReplyText(replyLines);
        foreach (var (label, regex) in _patterns)
        {
            try
            {
                if (regex.IsMatch(text))
                {
                    return label;
                }
            }
            catch (RegexMatchTimeoutException)
            {
                // A reply built to make a pattern backtrack is not evidence of anything.
            }
        }

        return null;
    }

    /// <summary>One line of text: reply codes dropped, the first line's enhanced status code kept, lines joined by a space.</summary>
    public static string ReplyText(IReadOnlyList<string> replyLines)
    {
        ArgumentNullException.ThrowIfNull(replyLines);
        var text = new StringBuilder();
        for (var i = 0; i < replyLines.Count && text.Length < MaxReplyChars; i++)
        {
            var line = ReplyCode().Replace(replyLines[i].TrimEnd('\r', '\n'), "");
            if (i > 0)
            {
                line = EnhancedCode().Replace(line, "");
                text.Append(' ');
            }

            text.Append(line);
        }

        return text.Length > MaxReplyChars ? text.ToString(0, MaxReplyChars) : text.ToString();
    }

    [GeneratedRegex(@"^\d{3}(?:[ -]|$)")]
    private static partial Regex ReplyCode();

    [GeneratedRegex(@"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")]
    private static partial Regex EnhancedCode();
}
