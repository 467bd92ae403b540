using System.Globalization;
using System.Text;

namespace Interceptor.Smtp.Identity;

/// <summary>
/// Builds a DKIM-Signature header (RFC 6376, relaxed/relaxed) from a message's header fields and its body hash. Every
/// listed header present is signed (each occurrence), and From once more than it occurs: an empty extra entry that makes
/// a From: added later break the signature (over-signing).
/// </summary>
public static class DkimSignatureBuilder
{
    /// <summary>The fields a recipient reads or that change how the body is shown.</summary>
    public static readonly IReadOnlyList<string> SignedHeaders =
    [
        "From", "Reply-To", "Sender", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
        "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
    ];

    /// <summary>The h= list for these fields: each signed name once per occurrence, From once more.</summary>
    public static IReadOnlyList<string> HeaderList(IReadOnlyList<HeaderField> fields)
    {
        var names = new List<string>();
        foreach (var name in SignedHeaders)
        {
            var count = fields.Count(f => f.Is(name)) + (name == "From" ? 1 : 0);
            names.AddRange(Enumerable.Repeat(name.ToLowerInvariant(), count));
        }

        return names;
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
            .Append("; h=").Append(string.Join(':', signed)).Append(";\r\n\tbh=").Append(Convert.ToBase64String(bodyHash))
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
        var used = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in headerList)
        {
            used.TryGetValue(name, out var taken);
            used[name] = taken + 1;
            var occurrences = fields.Where(f => f.Is(name)).ToList();
            if (taken < occurrences.Count)
            {
                yield return occurrences[occurrences.Count - 1 - taken];
            }
        }
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
