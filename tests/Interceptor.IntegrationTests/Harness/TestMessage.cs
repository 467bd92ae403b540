using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Builds the messages the tests send, as raw bytes, with the features that break naive relays:
/// 8-bit UTF-8 in headers and body, folded long header lines, body lines starting with a dot
/// (including a line that is only a dot), and a large base64 attachment.
/// </summary>
public static class TestMessage
{
    public const int DefaultAttachmentBytes = 5 * 1024 * 1024;

    /// <summary>A complete RFC 5322 message ending in CRLF; <paramref name="marker"/> makes copies distinguishable.</summary>
    public static byte[] Build(string from, string to, string marker, int attachmentBytes = DefaultAttachmentBytes)
    {
        var attachment = new byte[attachmentBytes];
        // Fixed seed: a failing byte comparison must be reproducible.
        new Random(25).NextBytes(attachment);
        var base64 = Convert.ToBase64String(attachment, Base64FormattingOptions.InsertLineBreaks);

        var text = new StringBuilder()
            .Append($"From: Alice Müller <{from}>\r\n")
            .Append($"To: <{to}>\r\n")
            .Append($"Subject: Grüße aus Köln – {marker} – ünïcødé ✓\r\n")
            .Append("Date: Thu, 27 Nov 2025 10:00:00 +0100\r\n")
            .Append($"Message-ID: <{marker}.{Guid.NewGuid():N}@client.test>\r\n")
            .Append("MIME-Version: 1.0\r\n")
            .Append("X-Long-Header: this header is deliberately longer than seventy-eight characters so\r\n")
            .Append("\tit is folded with a tab, and then folded once more with a space for good\r\n")
            .Append("  measure, which a relay must keep byte for byte\r\n")
            .Append("Content-Type: multipart/mixed;\r\n boundary=\"=_boundary_42\"\r\n")
            .Append("\r\n")
            .Append("This is a multi-part message in MIME format.\r\n")
            .Append("--=_boundary_42\r\n")
            .Append("Content-Type: text/plain; charset=utf-8\r\n")
            .Append("Content-Transfer-Encoding: 8bit\r\n")
            .Append("\r\n")
            .Append($"Marker: {marker}\r\n")
            .Append("Grüße – naïve café, 東京, ☃.\r\n")
            .Append(".a body line that starts with a dot\r\n")
            .Append("..two dots\r\n")
            .Append(".\r\n")
            .Append("the line above is a lone dot inside the body, not the end\r\n")
            .Append(" leading space, trailing space \r\n")
            .Append("\r\n")
            .Append("--=_boundary_42\r\n")
            .Append("Content-Type: application/octet-stream; name=\"blob.bin\"\r\n")
            .Append("Content-Transfer-Encoding: base64\r\n")
            .Append("Content-Disposition: attachment; filename=\"blob.bin\"\r\n")
            .Append("\r\n")
            .Append(base64)
            .Append("\r\n")
            .Append("--=_boundary_42--\r\n");
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>A small plain message for tests where size does not matter.</summary>
    public static byte[] Small(string from, string to, string marker) =>
        Encoding.UTF8.GetBytes(
            $"From: <{from}>\r\nTo: <{to}>\r\nSubject: {marker}\r\nMessage-ID: <{marker}.{Guid.NewGuid():N}@client.test>\r\n\r\nHello from {marker}.\r\n.dot line\r\n");

    /// <summary>RFC 5321 4.5.2 transparency: a leading dot on any CRLF-delimited line is doubled.</summary>
    public static byte[] DotStuff(byte[] message)
    {
        var output = new List<byte>(message.Length + 1024);
        var atLineStart = true;
        for (var i = 0; i < message.Length; i++)
        {
            var b = message[i];
            if (atLineStart && b == (byte)'.')
            {
                output.Add((byte)'.');
            }

            output.Add(b);
            atLineStart = b == (byte)'\n' && i > 0 && message[i - 1] == (byte)'\r';
        }

        return [.. output];
    }

    /// <summary>The message with every bare CR-less LF turned into CRLF, as the daemon must normalise DATA.</summary>
    public static byte[] NormaliseLf(byte[] message)
    {
        var output = new List<byte>(message.Length + 64);
        for (var i = 0; i < message.Length; i++)
        {
            if (message[i] == (byte)'\n' && (i == 0 || message[i - 1] != (byte)'\r'))
            {
                output.Add((byte)'\r');
            }

            output.Add(message[i]);
        }

        return [.. output];
    }

    /// <summary>Index of the first differing byte, or -1: byte-for-byte failures must say where.</summary>
    public static int FirstDifference(byte[] expected, byte[] actual)
    {
        var length = Math.Min(expected.Length, actual.Length);
        for (var i = 0; i < length; i++)
        {
            if (expected[i] != actual[i])
            {
                return i;
            }
        }

        return expected.Length == actual.Length ? -1 : length;
    }

    /// <summary>A readable excerpt around <paramref name="index"/>, with CR and LF made visible.</summary>
    public static string Excerpt(byte[] bytes, int index)
    {
        var start = Math.Max(0, index - 60);
        var end = Math.Min(bytes.Length, index + 60);
        return Encoding.UTF8.GetString(bytes, start, end - start).Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
    }

    /// <summary>Byte-for-byte equality with a message that says where the first difference is.</summary>
    public static void AssertSameBytes(byte[] expected, byte[] actual, string context = "")
    {
        var at = FirstDifference(expected, actual);
        Assert.That(at, Is.EqualTo(-1),
            $"messages differ at byte {at} (expected {expected.Length} bytes, got {actual.Length}){context}\n" +
            $"expected: {Excerpt(expected, Math.Max(at, 0))}\nactual:   {Excerpt(actual, Math.Max(at, 0))}");
    }
}
