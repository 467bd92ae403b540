using System.Globalization;
using System.Text;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// Builds a DKIM-Signature header (RFC 6376, relaxed/relaxed) from a message's header fields and its body hash. Every
/// listed header present is signed (each occurrence) and listed once more than it occurs: an empty extra entry that
/// makes a second copy added later (a second Subject on top) break the signature (over-signing, RFC 6376 8.15). The
/// fields a reader acts on (<see cref="OverSignedWhenAbsent"/>: From, Reply-To, Subject, To, Cc, the MIME fields that
/// decide how the body is shown, the threading ones) are over-signed when absent too, so a signed message cannot be
/// re-sent with a Reply-To of someone else's choosing, or its text shown as HTML; the others are not, since relays add
/// them to mail that lacks them (Date and Message-ID on submission, Sender, a list's List-*) and would break every such
/// signature.
/// </summary>
public static class DkimSignatureBuilder
{
    /// <summary>A signed name occurring more often than this is not signed at all (no mail needs it; h= would grow with it).</summary>
    public const int MaxOccurrences = 50;

    private static readonly HashSet<string> Signed = new(SignedHeadersList(), StringComparer.OrdinalIgnoreCase);

    private static string[] SignedHeadersList() =>
    [
        "From", "Reply-To", "Sender", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
        "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
    ];

    /// <summary>The fields a recipient reads or that change how the body is shown.</summary>
    public static readonly IReadOnlyList<string> SignedHeaders = SignedHeadersList();

    /// <summary>
    /// The signed fields listed in h= even when the message has none: readers act on them, and relays rarely add them
    /// (only by configuration: a To for Bcc-only mail; a conversion that adds MIME fields rewrites the body anyway).
    /// </summary>
    public static readonly IReadOnlyList<string> OverSignedWhenAbsent =
    [
        "From", "Reply-To", "Subject", "To", "Cc", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    ];

    /// <summary>The h= list for these fields: each signed name once per occurrence and once more, if present or if
    /// <see cref="OverSignedWhenAbsent"/>.</summary>
    public static IReadOnlyList<string> HeaderList(IReadOnlyList<HeaderField> fields)
    {
        var counts = Occurrences(fields);
        var names = new List<string>();
        foreach (var name in SignedHeaders)
        {
            var count = counts.GetValueOrDefault(name);
            if (count > 0 || OverSignedWhenAbsent.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                names.AddRange(Enumerable.Repeat(name.ToLowerInvariant(), count + 1));
            }
        }

        return names;
    }

    /// <summary>A signed name that occurs more than <see cref="MaxOccurrences"/> times, if any: such a message is not signed.</summary>
    public static string? TooOften(IReadOnlyList<HeaderField> fields) =>
        Occurrences(fields).FirstOrDefault(count => count.Value > MaxOccurrences).Key;

    // One pass, whatever the number of fields (a megabyte of "To:" lines is 200,000 of them).
    private static Dictionary<string, int> Occurrences(IReadOnlyList<HeaderField> fields)
    {
        var counts = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var field in fields)
        {
            if (Signed.Contains(field.Name))
            {
                counts[field.Name] = counts.GetValueOrDefault(field.Name) + 1;
            }
        }

        return counts;
    }

    /// <summary>
    /// The complete header line (folded, CRLF-terminated) to put on top of the message. <paramref name="timestamp"/> is the
    /// t= tag (Unix seconds).
    /// </summary>
    public static byte[] Build(IReadOnlyList<HeaderField> fields, byte[] bodyHash, string domain, string selector, DkimKey key, long timestamp)
    {
        var signed = HeaderList(fields);
        var unsigned = new StringBuilder()
            .Append("DKIM-Signature: v=1; a=").Append(key.Algorithm).Append("; c=relaxed/relaxed; d=").Append(domain)
            .Append("; s=").Append(selector).Append(";\r\n\tt=").Append(timestamp.ToString(CultureInfo.InvariantCulture))
            .Append(";\r\n\th=").Append(FoldList(signed)).Append(";\r\n\tbh=").Append(Convert.ToBase64String(bodyHash))
            .Append(";\r\n\tb=")
            .ToString();

        var data = new MemoryStream();
        foreach (var field in Pick(fields, signed))
        {
            data.Write(DkimCanonicalization.Header(field.Raw));
        }

        // The signature's own field last, with b= empty and without its CRLF (RFC 6376 3.7).
        data.Write(DkimCanonicalization.Header(Encoding.ASCII.GetBytes(unsigned), withCrlf: false));
        var signature = Convert.ToBase64String(key.Sign(data.ToArray()));
        return Encoding.ASCII.GetBytes(unsigned + Fold(signature) + "\r\n");
    }

    /// <summary>
    /// The fields h= selects, in h= order: a name listed n times takes the last n occurrences from the bottom up
    /// (RFC 6376 5.4.2); a name listed more often than it occurs selects nothing more.
    /// </summary>
    public static IEnumerable<HeaderField> Pick(IReadOnlyList<HeaderField> fields, IReadOnlyList<string> headerList)
    {
        // Each name's occurrences gathered once (not once per entry of h=: that was quadratic in the fields).
        var listed = new HashSet<string>(headerList, StringComparer.OrdinalIgnoreCase);
        var byName = new Dictionary<string, List<HeaderField>>(StringComparer.OrdinalIgnoreCase);
        foreach (var field in fields.Where(f => listed.Contains(f.Name)))
        {
            if (!byName.TryGetValue(field.Name, out var occurrences))
            {
                byName[field.Name] = occurrences = [];
            }

            occurrences.Add(field);
        }

        var used = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in headerList)
        {
            var taken = used.GetValueOrDefault(name);
            used[name] = taken + 1;
            if (byName.TryGetValue(name, out var occurrences) && taken < occurrences.Count)
            {
                yield return occurrences[occurrences.Count - 1 - taken];
            }
        }
    }

    // h= over lines of at most about 76 characters, broken after a colon (FWS is allowed there, RFC 6376 3.5).
    private static string FoldList(IReadOnlyList<string> names)
    {
        var folded = new StringBuilder();
        var line = 3; // "\th="
        for (var i = 0; i < names.Count; i++)
        {
            var item = names[i] + (i < names.Count - 1 ? ":" : "");
            if (line + item.Length > 76 && line > 3)
            {
                folded.Append("\r\n\t ");
                line = 2;
            }

            folded.Append(item);
            line += item.Length;
        }

        return folded.ToString();
    }

    // Lines of at most 76 characters: whitespace inside b= is ignored by verifiers (RFC 6376 3.5).
    private static string Fold(string base64)
    {
        var folded = new StringBuilder();
        for (var at = 0; at < base64.Length; at += 72)
        {
            folded.Append(at == 0 ? "" : "\r\n\t ").Append(base64.AsSpan(at, Math.Min(72, base64.Length - at)));
        }

        return folded.ToString();
    }
}
