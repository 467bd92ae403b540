using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Smtp.Tls;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Tls;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class ClientCertificateAuthorityTests
{
    [Test]
    public void Create_writes_a_ca_whose_key_only_its_owner_can_read_and_whose_name_says_what_it_is()
    {
        using var ca = TestClientCa.Load();

        Assert.That(File.GetUnixFileMode(TestClientCa.KeyPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(ca.Certificate.Subject, Does.Contain("smtp-interceptor local interception CA (unit.test)"));
        Assert.That(ca.Certificate.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority, Is.True);
        Assert.That(ca.Certificate.HasPrivateKey, Is.True);
    }

    [Test]
    public void Create_refuses_to_overwrite_an_existing_ca()
    {
        var error = Assert.Throws<ClientTlsSetupException>(() => ClientCertificateAuthority.Create(TestClientCa.CertificatePath, TestClientCa.KeyPath, "again"));

        Assert.That(error!.Message, Does.Contain("exists"));
    }

    [TestCase(UnixFileMode.GroupRead, "0640")]
    [TestCase(UnixFileMode.OtherRead, "0604")]
    public void Load_refuses_a_key_others_can_read_naming_the_file_and_its_mode(UnixFileMode extra, string mode)
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-ca-mode-").FullName;
        try
        {
            var key = Path.Combine(directory, "ca.key");
            File.Copy(TestClientCa.KeyPath, key);
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);

            var error = Assert.Throws<ClientTlsSetupException>(() => ClientCertificateAuthority.Load(TestClientCa.CertificatePath, key));

            Assert.That(error!.Message, Does.StartWith("ClientTls.CaKey: " + key).And.Contain($"mode {mode}"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void Load_refuses_a_certificate_that_is_not_a_ca()
    {
        using var ca = TestClientCa.Load();
        using var leaf = ca.Mint("mx.example.net", TimeSpan.FromDays(1));
        var directory = Directory.CreateTempSubdirectory("smtpi-ca-leaf-").FullName;
        try
        {
            var (certificate, key) = (Path.Combine(directory, "leaf.crt"), Path.Combine(directory, "leaf.key"));
            File.WriteAllText(certificate, leaf.ExportCertificatePem());
            File.WriteAllText(key, leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);

            var error = Assert.Throws<ClientTlsSetupException>(() => ClientCertificateAuthority.Load(certificate, key));

            Assert.That(error!.Message, Does.Contain("not a CA certificate"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void A_minted_certificate_names_the_dns_name_uses_p256_and_chains_to_the_ca()
    {
        using var ca = TestClientCa.Load();

        using var leaf = ca.Mint("mx.example.net", TimeSpan.FromDays(7));

        var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.That(names.EnumerateDnsNames(), Is.EqualTo(new[] { "mx.example.net" }));
        using var key = leaf.GetECDsaPublicKey();
        Assert.That(key!.ExportParameters(false).Curve.Oid.Value, Is.EqualTo("1.2.840.10045.3.1.7"), "P-256");
        Assert.That(leaf.HasPrivateKey, Is.True);
        Assert.That((leaf.NotAfter - leaf.NotBefore).TotalHours, Is.EqualTo(7 * 24 + 1).Within(0.1), "an hour back for clock drift, then the lifetime");
        Assert.That(Verifies(leaf, ca.Certificate), Is.True, "chains to the CA");
        Assert.That(Verifies(leaf, ca.Mint("other.test", TimeSpan.FromDays(1))), Is.False, "and to nothing else");
    }

    [Test]
    public void A_ca_made_minutes_ago_mints_certificates_valid_from_its_own_start_and_an_expired_one_says_so()
    {
        // What `openssl req -x509` makes: a CA valid from the minute it was made (Create's own start is an hour back).
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var ca = TestClientCa.Load();
        clock.Now = new DateTimeOffset(ca.Certificate.NotBefore.ToUniversalTime()).AddMinutes(10);
        using var young = ClientCertificateAuthority.Load(TestClientCa.CertificatePath, TestClientCa.KeyPath, clock);

        using var leaf = young.Mint("mx.example.net", TimeSpan.FromDays(7));

        Assert.That(leaf.NotBefore, Is.EqualTo(ca.Certificate.NotBefore), "not an hour back: before the CA's start");
        Assert.That(Verifies(leaf, ca.Certificate), Is.True);
        clock.Now = new DateTimeOffset(ca.Certificate.NotAfter.ToUniversalTime()).AddMinutes(1);
        var expired = Assert.Throws<CryptographicException>(() => young.Mint("mx.example.net", TimeSpan.FromDays(7)));
        Assert.That(expired!.Message, Does.Contain("is not valid now").And.Contain("client-ca create"));
    }

    [Test]
    public void A_certificate_for_an_address_carries_it_as_an_ip_san()
    {
        using var ca = TestClientCa.Load();

        using var leaf = ca.Mint("203.0.113.5", TimeSpan.FromDays(1));

        var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.That(names.EnumerateIPAddresses(), Is.EqualTo(new[] { IPAddress.Parse("203.0.113.5") }));
        Assert.That(names.EnumerateDnsNames(), Is.Empty);
    }

    private static bool Verifies(X509Certificate2 leaf, X509Certificate2 root)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(leaf);
    }
}
