using System.Globalization;
using System.Text;

namespace Interceptor.Daemon.Control;

/// <summary>
/// Makes text that customers or upstreams chose (replies, addresses, reasons) safe to print on an admin's terminal:
/// C0 and C1 controls, DEL, and invisible formatting characters (bidi overrides and isolates U+202A–U+202E and
/// U+2066–U+2069, marks U+200E/U+200F, zero-width characters, …: Unicode category Cf) plus line and paragraph
/// separators are shown as visible escapes, <c>\x1b</c>, <c>\u202e</c>, <c>\U000e0041</c>. An escape sequence can
/// then neither clear the screen nor paint a fake notice, and a bidi override cannot make "gnp.exe" read as "exe.png".
/// Backslashes are left alone: the escapes are for the eye, and `--json` gives the exact text.
/// </summary>
public static class TerminalText
{
    /// <summary>Escapes every unsafe character of <paramref name="text"/>, line breaks included (for one table cell).</summary>
    public static string Escape(string text) => Escape(text, keepNewlines: false);

    /// <summary>Escapes like <see cref="Escape(string)"/> but keeps '\n' (for whole rendered outputs).</summary>
    public static string EscapeKeepingNewlines(string text) => Escape(text, keepNewlines: true);

    private static string Escape(string text, bool keepNewlines)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!NeedsEscaping(text, keepNewlines))
        {
            return text;
        }

        var result = new StringBuilder(text.Length + 16);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var rune = new Rune(c, text[i + 1]);
                i++;
                if (Rune.GetUnicodeCategory(rune) == UnicodeCategory.Format)
                {
                    result.Append(CultureInfo.InvariantCulture, $"\\U{rune.Value:x8}");
                }
                else
                {
                    result.Append(c).Append(text[i]);
                }

                continue;
            }

            if (!IsUnsafe(c, keepNewlines))
            {
                result.Append(c);
            }
            else if (c <= 0xff)
            {
                result.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            }
            else
            {
                result.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
        }

        return result.ToString();
    }

    private static bool NeedsEscaping(string text, bool keepNewlines)
    {
        foreach (var c in text)
        {
            if (IsUnsafe(c, keepNewlines) || char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A lone surrogate is unsafe too: it is not text, and terminals render it unpredictably.</summary>
    private static bool IsUnsafe(char c, bool keepNewlines) =>
        (c != '\n' || !keepNewlines) &&
        (char.IsControl(c) || char.IsSurrogate(c) ||
         char.GetUnicodeCategory(c) is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator);
}
