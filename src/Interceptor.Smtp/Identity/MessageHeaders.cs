using System.Text;
using MimeKit;

namespace Interceptor.Smtp.Identity;

/// <summary>One header field as it stands in the message: its name and its exact bytes (folded lines and CRLF included).</summary>
public sealed record HeaderField(string Name, byte[] Raw)
{
    /// <summary>The bytes after the colon (folding kept).</summary>
    public ReadOnlySpan<byte> RawValue => Raw.AsSpan(Raw.AsSpan().IndexOf((byte)':') + 1);

    public bool Is(string name) => string.Equals(Name, name, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// A message's header section, read from its spool. Bounded: past <see cref="MaxBytes"/> reading stops and
/// <see cref="TooLarge"/> is set (no real message has a megabyte of headers; a hostile one must not cost memory).
/// </summary>
public sealed class MessageHeaders
{
    public const int MaxBytes = 1 << 20;

    private MessageHeaders(IReadOnlyList<HeaderField> fields, bool tooLarge, byte[]? bodyStart = null)
    {
        Fields = fields;
        TooLarge = tooLarge;
        BodyStart = bodyStart;
    }

    public IReadOnlyList<HeaderField> Fields { get; }

    public bool TooLarge { get; }

    /// <summary>
    /// The line that ended the header section without the empty line (not a header field: the body's first line, as
    /// mail readers and verifiers see it), already read; null when the section ended as it should.
    /// </summary>
    public byte[]? BodyStart { get; }

    /// <summary>Reads up to the empty line that ends the header section (consumed), leaving the reader at the body.</summary>
    internal static async ValueTask<MessageHeaders> ReadAsync(SpoolLineReader reader, CancellationToken token)
    {
        var fields = new List<HeaderField>();
        var current = new List<byte>();
        string? name = null;
        var total = 0;
        void Flush()
        {
            if (name is not null)
            {
                fields.Add(new HeaderField(name, [.. current]));
            }

            current.Clear();
            name = null;
        }

        while (await reader.ReadLineAsync(token))
        {
            var line = reader.Line;
            if (line.SequenceEqual("\r\n"u8) || line.SequenceEqual("\n"u8))
            {
                break;
            }

            total += line.Length;
            if (total > MaxBytes)
            {
                return new MessageHeaders(fields, tooLarge: true);
            }

            if (line[0] is (byte)' ' or (byte)'\t' && name is not null)
            {
                current.AddRange(line);
                continue;
            }

            Flush();
            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                // Not a header: the section has ended without its empty line (the rest is body, as mail readers see it),
                // and this line, read already, is the body's first.
                return new MessageHeaders(fields, tooLarge: false, line.ToArray());
            }

            name = Encoding.ASCII.GetString(line[..colon]).TrimEnd(' ', '\t');
            current.AddRange(line);
        }

        Flush();
        return new MessageHeaders(fields, tooLarge: false);
    }

    /// <summary>Reads just the header section of a spooled message.</summary>
    public static async ValueTask<MessageHeaders> ReadAsync(Stream spool, CancellationToken token)
    {
        using var reader = new SpoolLineReader(spool);
        return await ReadAsync(reader, token);
    }

    /// <summary>
    /// Every mailbox in every From: field (group members included), parsed as RFC 5322 says (quoted names with commas,
    /// comments, encoded words). A field that does not parse counts as one mailbox without a domain, so it is never owned.
    /// </summary>
    public IReadOnlyList<string> FromDomains()
    {
        var domains = new List<string>();
        foreach (var field in Fields.Where(f => f.Is("From")))
        {
            var value = field.RawValue.ToArray();
            if (InternetAddressList.TryParse(ParserOptions.Default, value, out var list) && list.Mailboxes.Any())
            {
                domains.AddRange(list.Mailboxes.Select(m => m.Domain ?? ""));
            }
            else
            {
                domains.Add("");
            }
        }

        return domains;
    }

    /// <summary>The d= of every DKIM-Signature already on the message.</summary>
    public IEnumerable<string> SigningDomains() =>
        Fields.Where(f => f.Is("DKIM-Signature")).Select(f => DkimTags.Find(Encoding.ASCII.GetString(f.RawValue), "d")).OfType<string>();
}
