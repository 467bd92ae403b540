using System.Security.Cryptography;
using System.Text;
using Interceptor.Smtp.Identity;

namespace Interceptor.Tests.Smtp.Identity;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class DkimCanonicalizationTests
{
    private static string Header(string raw) => Encoding.ASCII.GetString(DkimCanonicalization.Header(Encoding.ASCII.GetBytes(raw)));

    private static string BodyHash(params string[] lines)
    {
        using var hasher = new RelaxedBodyHasher();
        foreach (var line in lines)
        {
            hasher.AddLine(Encoding.ASCII.GetBytes(line));
        }

        return Convert.ToBase64String(hasher.Finish());
    }

    private static string Sha(string text) => Convert.ToBase64String(SHA256.HashData(Encoding.ASCII.GetBytes(text)));

    [Test]
    public void Relaxed_headers_follow_the_example_of_rfc_6376_3_4_5()
    {
        Assert.That(Header("A: X\r\n"), Is.EqualTo("a:X\r\n"));
        Assert.That(Header("B : Y\t\r\n\tZ  \r\n"), Is.EqualTo("b:Y Z\r\n"));
    }

    [Test]
    public void A_colon_inside_the_value_keeps_the_space_after_it()
    {
        Assert.That(Header("Subject:  Re:  hello \r\n"), Is.EqualTo("subject:Re: hello\r\n"));
    }

    [Test]
    public void Relaxed_body_collapses_whitespace_and_ignores_trailing_empty_lines()
    {
        Assert.That(BodyHash(" C \r\n", "D \t E\r\n", "\r\n", "\r\n"), Is.EqualTo(Sha(" C\r\nD E\r\n")));
        Assert.That(BodyHash("a\r\n", "\r\n", "b\r\n"), Is.EqualTo(Sha("a\r\n\r\nb\r\n")), "inner empty lines stay");
    }

    [Test]
    public void An_empty_body_hashes_nothing()
    {
        Assert.That(BodyHash(), Is.EqualTo("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
        Assert.That(BodyHash("\r\n", "\r\n"), Is.EqualTo("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
    }

    [Test]
    public async Task The_spool_is_read_dot_unstuffed_line_by_line()
    {
        using var stream = new MemoryStream(Encoding.ASCII.GetBytes("Subject: x\r\n\r\n..leading dot\r\n.\r\nno end"));
        using var reader = new SpoolLineReader(stream);
        var lines = new List<string>();
        while (await reader.ReadLineAsync(CancellationToken.None))
        {
            lines.Add(Encoding.ASCII.GetString(reader.Line));
        }

        Assert.That(lines, Is.EqualTo(new[] { "Subject: x\r\n", "\r\n", ".leading dot\r\n", "\r\n", "no end" }));
    }

    [Test]
    public async Task Lines_longer_than_the_read_buffer_come_back_whole()
    {
        var longLine = new string('x', 300_000) + "\r\n";
        using var stream = new MemoryStream(Encoding.ASCII.GetBytes("a\r\n" + longLine + "b\r\n"));
        using var reader = new SpoolLineReader(stream);
        var lengths = new List<int>();
        while (await reader.ReadLineAsync(CancellationToken.None))
        {
            lengths.Add(reader.Line.Length);
        }

        Assert.That(lengths, Is.EqualTo(new[] { 3, longLine.Length, 3 }));
    }

    [Test]
    public void Over_signing_selects_fields_from_the_bottom_and_nothing_for_the_extra_from()
    {
        var fields = new[]
        {
            new HeaderField("From", Encoding.ASCII.GetBytes("From: a@example.test\r\n")),
            new HeaderField("Received", Encoding.ASCII.GetBytes("Received: x\r\n")),
            new HeaderField("To", Encoding.ASCII.GetBytes("To: 1@x.test\r\n")),
            new HeaderField("To", Encoding.ASCII.GetBytes("To: 2@x.test\r\n")),
        };
        var list = DkimSignatureBuilder.HeaderList(fields);

        // Each present name once more than it occurs; absent, only the ones readers act on (Reply-To, Subject, Cc, the
        // threading and MIME fields: 0 + 1), not Sender, Date, Message-ID or List-*.
        Assert.That(list, Is.EqualTo(new[]
        {
            "from", "from", "reply-to", "subject", "to", "to", "to", "cc", "in-reply-to", "references",
            "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
        }));
        Assert.That(DkimSignatureBuilder.Pick(fields, list).Select(f => Encoding.ASCII.GetString(f.Raw)),
            Is.EqualTo(new[] { "From: a@example.test\r\n", "To: 2@x.test\r\n", "To: 1@x.test\r\n" }));
    }
}
