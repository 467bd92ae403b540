using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Smtp.Data;
using Interceptor.Smtp.Identity;
using Interceptor.Smtp.Session;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;

namespace Interceptor.Tests.Smtp.Identity;

/// <summary>Issue 17: the From policy and DKIM signing stages, on spooled messages.</summary>
[TestFixture]
public partial class IdentityStageTests
{
    private const string Owned = "From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n..dot\r\n";
    private string _keys = "";
    private FileMessageSpoolFactory _spools = null!;
    private static readonly IDomainMapSource Map = Domains("alice: example.test\nbob: bob.test\ncarol: xn--bcher-kva.example\n");

    [SetUp]
    public void SetUp()
    {
        _keys = Directory.CreateTempSubdirectory("smtpi-dkim-").FullName;
        _spools = new FileMessageSpoolFactory(Path.Combine(_keys, "spool"), 1L << 30);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_keys, recursive: true);

    private static FixedDomainMap Domains(string text)
    {
        using var reader = new StringReader(text);
        return new FixedDomainMap(DomainMap.Parse(DomainSource.File, reader));
    }

    private static MessageContext Message(string user = "alice", string sender = "alice@example.test") =>
        new(new ConnectionOrigin(1000, user, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 25)), "t1", sender, ["bob@example.net"]);

    private async Task<StageVerdict> RunAsync(IMessageStage stage, string message, MessageContext? context = null)
    {
        context ??= Message();
        await using var spool = await _spools.CreateAsync(context, CancellationToken.None);
        await spool.AppendAsync(Encoding.UTF8.GetBytes(message), CancellationToken.None);
        return await stage.CompleteAsync(context, spool, CancellationToken.None);
    }

    private string WriteKey(string domain, string pem)
    {
        Directory.CreateDirectory(Path.Combine(_keys, domain));
        File.WriteAllText(Path.Combine(_keys, domain, "default.key"), pem);
        return pem;
    }

    private DkimSigningStage Signer(RecordingLogger logger, List<string>? alerts = null, long maxBytes = 1 << 20) =>
        new(new DkimKeyStore(_keys, "default", ["rsa-sha256", "ed25519-sha256"]), Map, includeSubdomains: true, maxBytes, logger,
            (domain, problem) => alerts?.Add($"{domain}: {problem}"));

    [Test]
    public async Task An_owned_from_domain_is_signed_and_the_rsa_signature_verifies_over_the_unstuffed_message()
    {
        using var rsa = RSA.Create(2048);
        WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());
        var logger = new RecordingLogger();

        var verdict = await RunAsync(Signer(logger), Owned);

        var header = Encoding.ASCII.GetString(verdict.AddedHeaders.Span);
        Assert.That(header, Does.StartWith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=default;"));
        // Every present name once more than it occurs, and the ones readers act on when absent too (Reply-To, Cc, the
        // MIME and threading fields); not Date, Message-ID, Sender or List-*, which relays add to mail that lacks them.
        Assert.That(DkimTags.Find(header, "h"), Is.EqualTo(
            "from:from:reply-to:subject:subject:to:to:cc:in-reply-to:references:mime-version:content-type:content-transfer-encoding:content-disposition"));
        var lines = header.Split("\r\n");
        var (hStart, hEnd) = (Array.FindIndex(lines, l => l.StartsWith("\th=", StringComparison.Ordinal)), Array.FindIndex(lines, l => l.StartsWith("\tbh=", StringComparison.Ordinal)));
        Assert.That(hEnd - hStart, Is.GreaterThan(1), "h= folded");
        Assert.That(lines[hStart..hEnd].Max(line => line.Length), Is.LessThanOrEqualTo(77), "like b=");
        Assert.That(logger.Lines, Has.Some.Contains("dkim=pass d=example.test"));
        var expectedBody = Convert.ToBase64String(SHA256.HashData("hello\r\n.dot\r\n"u8.ToArray()));
        Assert.That(DkimTags.Find(header, "bh"), Is.EqualTo(expectedBody));

        var signed = "from:Alice <alice@example.test>\r\nsubject:hi\r\nto:bob@example.net\r\n"
            + Regex.Replace(Encoding.ASCII.GetString(DkimCanonicalization.Header(verdict.AddedHeaders.ToArray(), withCrlf: false)), "b=[^;]*$", "b=");
        var signature = Convert.FromBase64String(DkimTags.Find(header, "b")!);
        Assert.That(rsa.VerifyData(Encoding.ASCII.GetBytes(signed), signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1), Is.True);
        Assert.That(rsa.VerifyData(Encoding.ASCII.GetBytes(signed.Replace("subject:hi", "subject:ho", StringComparison.Ordinal)), signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1), Is.False);
    }

    [Test]
    public async Task An_ed25519_key_signs_ed25519_sha256_over_the_sha256_of_the_header_data()
    {
        var key = new Ed25519PrivateKeyParameters(new SecureRandom());
        WriteKey("example.test", PemEncoding.WriteString("PRIVATE KEY", PrivateKeyInfoFactory.CreatePrivateKeyInfo(key).GetEncoded()));

        var verdict = await RunAsync(Signer(new RecordingLogger()), Owned);

        var header = Encoding.ASCII.GetString(verdict.AddedHeaders.Span);
        Assert.That(DkimTags.Find(header, "a"), Is.EqualTo("ed25519-sha256"));
        var signed = "from:Alice <alice@example.test>\r\nsubject:hi\r\nto:bob@example.net\r\n"
            + Regex.Replace(Encoding.ASCII.GetString(DkimCanonicalization.Header(verdict.AddedHeaders.ToArray(), withCrlf: false)), "b=[^;]*$", "b=");
        var verifier = new Org.BouncyCastle.Crypto.Signers.Ed25519Signer();
        verifier.Init(false, key.GeneratePublicKey());
        var digest = SHA256.HashData(Encoding.ASCII.GetBytes(signed));
        verifier.BlockUpdate(digest, 0, digest.Length);
        Assert.That(verifier.VerifySignature(Convert.FromBase64String(DkimTags.Find(header, "b")!)), Is.True);
    }

    [TestCase("From: x@paypal.com\r\n\r\nbody\r\n", "not-owned")]
    [TestCase("From: a@example.test, b@example.test\r\n\r\nbody\r\n", "multiple-from")]
    [TestCase("From: a@example.test\r\nFrom: a@example.test\r\n\r\nbody\r\n", "multiple-from")]
    [TestCase("Subject: no from\r\n\r\nbody\r\n", "no-from")]
    [TestCase("From: shop@other.example.test\r\n\r\nbody\r\n", "no-key")]
    [TestCase("DKIM-Signature: v=1; d=Example.test; b=x\r\nFrom: a@example.test\r\n\r\nbody\r\n", "already-signed")]
    [TestCase("From: a@example.test\r\nTo: x@example.net\r\nTo: x@example.net\r\n\r\nbody\r\n", null)]
    public async Task Messages_that_cannot_be_signed_go_unsigned_with_the_reason_logged(string message, string? reason)
    {
        using var rsa = RSA.Create(1024);
        WriteKey("other.example.test.invalid", rsa.ExportRSAPrivateKeyPem());
        WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());
        File.Delete(Path.Combine(_keys, "example.test", "default.key"));
        if (reason == "already-signed")
        {
            WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());
        }

        if (reason is null)
        {
            // A signed name many times over (a megabyte of "To:" lines is 200,000 fields): not signed, whatever the key.
            WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());
            message = message.Replace("To: x@example.net\r\nTo: x@example.net\r\n", string.Concat(Enumerable.Repeat("To:\r\n", 200_000)), StringComparison.Ordinal);
            reason = "too-many-headers domain=example.test";
        }

        var logger = new RecordingLogger();
        var verdict = await RunAsync(Signer(logger), message);

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Continue));
        Assert.That(verdict.AddedHeaders.IsEmpty, Is.True);
        Assert.That(logger.Lines, Has.Some.Contains($"dkim=none reason={reason}"));
    }

    [Test]
    public async Task A_from_domain_written_like_more_fields_is_encoded_in_the_log_lines()
    {
        var signer = new RecordingLogger();
        var policy = new RecordingLogger();
        const string message = "From: x@evil.example=uid=0\r\n\r\nbody\r\n";

        await RunAsync(Signer(signer), message);
        await RunAsync(new FromPolicyStage(new FromPolicyOptions { Mode = FromPolicyMode.Log }, includeSubdomains: true, Map, policy), message);

        Assert.That(signer.Lines, Has.Some.Contains("domain=evil.example%3Duid%3D0 "));
        Assert.That(policy.Lines, Has.Some.Contains("domain=evil.example%3Duid%3D0 "));
    }

    [Test]
    public void A_name_repeated_past_the_bound_is_named_and_h_picks_its_fields_from_the_bottom_up()
    {
        HeaderField Field(string text) => new(text[..text.IndexOf(':', StringComparison.Ordinal)], Encoding.ASCII.GetBytes(text + "\r\n"));
        var fields = new List<HeaderField> { Field("From: a@example.test") };
        fields.AddRange(Enumerable.Range(0, DkimSignatureBuilder.MaxOccurrences).Select(i => Field($"To: r{i}@example.net")));

        Assert.That(DkimSignatureBuilder.TooOften(fields), Is.Null, "at the bound");
        var picked = DkimSignatureBuilder.Pick(fields, ["to", "to", "from", "subject"]).Select(f => Encoding.ASCII.GetString(f.Raw).TrimEnd()).ToList();
        Assert.That(picked, Is.EqualTo(new[] { $"To: r{DkimSignatureBuilder.MaxOccurrences - 1}@example.net", $"To: r{DkimSignatureBuilder.MaxOccurrences - 2}@example.net", "From: a@example.test" }));
        fields.Add(Field("to: one@too.many"));
        Assert.That(DkimSignatureBuilder.TooOften(fields), Is.EqualTo("To").IgnoreCase);
    }

    [Test]
    public async Task A_header_section_ended_by_a_line_that_is_no_field_hashes_that_line_as_the_bodys_first()
    {
        using var rsa = RSA.Create(2048);
        WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());

        var verdict = await RunAsync(Signer(new RecordingLogger()), "From: Alice <alice@example.test>\r\nSubject: x\r\nHello\r\nrest\r\n");

        var header = Encoding.ASCII.GetString(verdict.AddedHeaders.Span);
        Assert.That(DkimTags.Find(header, "bh"), Is.EqualTo(Convert.ToBase64String(SHA256.HashData("Hello\r\nrest\r\n"u8.ToArray()))));
    }

    // MimeKit gives an xn-- From: domain back in Unicode too: before the forty-sixth session neither form matched the map.
    [TestCase("carol@b\u00FCcher.example")]
    [TestCase("carol@xn--bcher-kva.example")]
    public async Task An_internationalised_from_domain_is_signed_as_its_owner_in_its_ascii_form(string address)
    {
        using var rsa = RSA.Create(1024);
        WriteKey("xn--bcher-kva.example", rsa.ExportRSAPrivateKeyPem());
        var logger = new RecordingLogger();
        var message = $"From: Carol <{address}>\r\nSubject: hi\r\n\r\nbody\r\n";

        var verdict = await RunAsync(Signer(logger), message, Message(user: "carol", sender: "carol@xn--bcher-kva.example"));
        var refused = await RunAsync(Policy(FromPolicyMode.Refuse), message, Message(user: "carol", sender: "carol@b\u00FCcher.example"));

        Assert.That(DkimTags.Find(Encoding.ASCII.GetString(verdict.AddedHeaders.Span), "d"), Is.EqualTo("xn--bcher-kva.example"), string.Join("\n", logger.Lines));
        Assert.That(refused.Decision, Is.EqualTo(StageDecision.Continue), refused.Reply?.ToString());
    }

    [Test]
    public async Task Another_user_cannot_get_mail_signed_for_a_domain_it_does_not_own()
    {
        using var rsa = RSA.Create(1024);
        WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());
        var logger = new RecordingLogger();

        var verdict = await RunAsync(Signer(logger), Owned, Message(user: "bob", sender: "bob@bob.test"));

        Assert.That(verdict.AddedHeaders.IsEmpty, Is.True);
        Assert.That(logger.Lines, Has.Some.Contains("dkim=none reason=not-owned domain=example.test"));
    }

    [Test]
    public async Task An_unreadable_key_sends_unsigned_and_alerts_once()
    {
        WriteKey("example.test", "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n");
        var alerts = new List<string>();
        var logger = new RecordingLogger();
        var stage = Signer(logger, alerts);

        await RunAsync(stage, Owned);
        var verdict = await RunAsync(stage, Owned);

        Assert.That(verdict.AddedHeaders.IsEmpty, Is.True);
        Assert.That(alerts, Has.Count.EqualTo(1));
        Assert.That(alerts[0], Does.StartWith("example.test: ").And.Contain("default.key"));
        Assert.That(logger.Lines, Has.Some.Contains("dkim=none reason=no-key"));
    }

    [Test]
    public async Task A_message_over_the_cap_goes_unsigned_as_too_large()
    {
        using var rsa = RSA.Create(1024);
        WriteKey("example.test", rsa.ExportRSAPrivateKeyPem());
        var logger = new RecordingLogger();

        var verdict = await RunAsync(Signer(logger, maxBytes: 10), Owned);

        Assert.That(verdict.AddedHeaders.IsEmpty, Is.True);
        Assert.That(logger.Lines, Has.Some.Contains("dkim=none reason=too-large"));
    }

    private static FromPolicyStage Policy(FromPolicyMode mode, params string[] allowed) =>
        new(new FromPolicyOptions { Mode = mode, AllowedDomains = allowed }, includeSubdomains: true, Map, new RecordingLogger());

    [Test]
    public async Task Refuse_mode_answers_550_naming_the_domain_and_the_user()
    {
        var verdict = await RunAsync(Policy(FromPolicyMode.Refuse), "From: Security <security@paypal.com>\r\n\r\nbody\r\n");

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Refuse));
        Assert.That(verdict.Reply!.ToString(), Does.Contain("550 5.7.1 From: domain paypal.com is not a domain of user alice"));
    }

    [Test]
    public async Task Log_mode_relays_a_forged_from()
    {
        var verdict = await RunAsync(Policy(FromPolicyMode.Log), "From: security@paypal.com\r\n\r\nbody\r\n");

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Continue));
    }

    [TestCase("From: \"Pay, Pal\" <a@mail.example.test>\r\n\r\nx\r\n", "alice@example.test", StageDecision.Continue)]
    [TestCase("From: a@provider.test\r\n\r\nx\r\n", "alice@example.test", StageDecision.Continue)]
    [TestCase("From: a@example.test\r\n\r\nx\r\n", "", StageDecision.Continue)]
    [TestCase("From: a@example.test\r\n\r\nx\r\n", "bounce@paypal.com", StageDecision.Refuse)]
    [TestCase("From: a@example.test, b@example.test\r\n\r\nx\r\n", "alice@example.test", StageDecision.Refuse)]
    [TestCase("From: undisclosed:;\r\n\r\nx\r\n", "alice@example.test", StageDecision.Refuse)]
    [TestCase("From: a@bob.test\r\n\r\nx\r\n", "alice@example.test", StageDecision.Refuse)]
    [TestCase("From: a@\uFF42ob.test\r\n\r\nx\r\n", "alice@example.test", StageDecision.Refuse)]
    [TestCase("From: a@b\u00FCcher.example\r\n\r\nx\r\n", "alice@example.test", StageDecision.Refuse)]
    [TestCase("From: a@example.test\r\n\r\nx\r\n", "a@xn--bcher-kva.example", StageDecision.Refuse)]
    public async Task Refuse_mode_checks_one_owned_or_allowed_from_and_the_envelope_sender(string message, string sender, StageDecision expected)
    {
        var verdict = await RunAsync(Policy(FromPolicyMode.Refuse, "provider.test"), message, Message(sender: sender));

        Assert.That(verdict.Decision, Is.EqualTo(expected), verdict.Reply?.ToString());
    }

    [Test]
    public async Task Refuse_mode_refuses_a_header_section_too_large_to_read_to_its_end()
    {
        // Her own From: on top, a megabyte of padding, then the From: a receiver may take: the policy never sees the second.
        var message = "From: a@example.test\r\n" + string.Concat(Enumerable.Repeat("X-Pad: " + new string('p', 100) + "\r\n", 11_000))
            + "From: ceo@bank.example\r\n\r\nbody\r\n";

        var verdict = await RunAsync(Policy(FromPolicyMode.Refuse), message);

        Assert.That(verdict.Decision, Is.EqualTo(StageDecision.Refuse));
        Assert.That(verdict.Reply?.ToString(), Does.Contain("header section is over 1024 KiB"));
    }
}

/// <summary>Issue 17: signing a very large message costs a bounded amount of memory (RSS) (one line, one hash state).</summary>
[TestFixture]
public class LargeMessageSigningTests
{
    [Test]
    public async Task A_300_MB_message_is_signed_with_bounded_memory()
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-dkim-large-").FullName;
        try
        {
            using var rsa = RSA.Create(2048);
            Directory.CreateDirectory(Path.Combine(directory, "example.test"));
            File.WriteAllText(Path.Combine(directory, "example.test", "default.key"), rsa.ExportRSAPrivateKeyPem());
            using var reader = new StringReader("alice: example.test\n");
            var map = new FixedDomainMap(DomainMap.Parse(DomainSource.File, reader));
            var stage = new DkimSigningStage(new DkimKeyStore(directory, "default", ["rsa-sha256"]), map, true, 1L << 30, new RecordingLogger());
            var context = new MessageContext(new ConnectionOrigin(1000, "alice", new IPEndPoint(IPAddress.Loopback, 1), new IPEndPoint(IPAddress.Loopback, 25)), "big", "alice@example.test", ["x@example.net"]);
            await using var spool = await new FileMessageSpoolFactory(Path.Combine(directory, "spool"), 1L << 30).CreateAsync(context, CancellationToken.None);
            await spool.AppendAsync("From: alice@example.test\r\nSubject: big\r\n\r\n"u8.ToArray(), CancellationToken.None);
            var line = Encoding.ASCII.GetBytes(new string('x', 998) + "\r\n");
            var chunk = Enumerable.Range(0, 1000).SelectMany(_ => line).ToArray();
            for (var i = 0; i < 300; i++)
            {
                await spool.AppendAsync(chunk, CancellationToken.None);
            }

            using var process = System.Diagnostics.Process.GetCurrentProcess();
            var peakBefore = process.PeakWorkingSet64;
            var started = System.Diagnostics.Stopwatch.StartNew();
            var verdict = await stage.CompleteAsync(context, spool, CancellationToken.None);
            process.Refresh();
            var growth = process.PeakWorkingSet64 - peakBefore;
            await TestContext.Out.WriteLineAsync($"signed {spool.Length} bytes in {started.ElapsedMilliseconds} ms; peak RSS {process.PeakWorkingSet64} bytes, {growth} more than before signing");

            Assert.That(Encoding.ASCII.GetString(verdict.AddedHeaders.Span), Does.StartWith("DKIM-Signature:"));
            Assert.That(growth, Is.LessThan(64L << 20), "the peak RSS grows by far less than the message (300 MB)");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
