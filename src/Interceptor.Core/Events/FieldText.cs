using System.Globalization;
using System.Text;

namespace Interceptor.Core.Events;

/// <summary>
/// Writes client-chosen text (an envelope address, a working directory, an executable's path) into a line of
/// <c>name=value</c> fields, so that no reader of the line can be fooled into seeing a field the daemon did not write.
/// </summary>
public static class FieldText
{
    /// <summary>
    /// Percent-encodes (RFC 3986 style, over UTF-8) every byte that could end or fake a field: space and every other
    /// byte outside printable ASCII (controls, non-ASCII, so no look-alike "＝" or no-break space either), and
    /// <c>% " ; = &lt; &gt; \</c>. <c>x&gt; uid=0 user=root</c> becomes <c>x%3E%20uid%3D0%20user%3Droot</c>;
    /// an ordinary address or path (<c>alice@example.com</c>, <c>/home/alice/public_html</c>) is unchanged.
    /// </summary>
    public static string PercentEncode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.Any(c => IsUnsafe(c)))
        {
            return text;
        }

        var result = new StringBuilder(text.Length + 16);
        Span<byte> bytes = stackalloc byte[4];
        foreach (var rune in text.EnumerateRunes())
        {
            if (rune.IsAscii && !IsUnsafe((char)rune.Value))
            {
                result.Append((char)rune.Value);
                continue;
            }

            var length = rune.EncodeToUtf8(bytes);
            foreach (var b in bytes[..length])
            {
                result.Append(CultureInfo.InvariantCulture, $"%{b:X2}");
            }
        }

        return result.ToString();
    }

    /// <summary>
    /// Text between double quotes that cannot end early: <c>"</c> and <c>\</c> get a backslash, controls and
    /// invisible formatting characters become <c>\xNN</c> / <c>\uNNNN</c>. For readable free text (an upstream reply).
    /// </summary>
    public static string Quote(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            if (c is '"' or '\\')
            {
                result.Append('\\').Append(c);
            }
            else if (char.IsControl(c) || char.IsSurrogate(c) || char.GetUnicodeCategory(c) is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
            {
                // Surrogate pairs are escaped too: a reply is ASCII in practice, and a tag character (U+E00xx) is a pair.
                result.Append(c <= 0xff ? "\\x" : "\\u").Append(((int)c).ToString(c <= 0xff ? "x2" : "x4", CultureInfo.InvariantCulture));
            }
            else
            {
                result.Append(c);
            }
        }

        return result.Append('"').ToString();
    }

    private static bool IsUnsafe(char c) => c is <= ' ' or >= (char)0x7f or '%' or '"' or ';' or '=' or '<' or '>' or '\\';
}
