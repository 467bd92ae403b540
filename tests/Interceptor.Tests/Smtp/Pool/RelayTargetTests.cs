using System.Security.Cryptography.X509Certificates;
using Interceptor.Core.Options;
using Interceptor.Smtp.Pool;
using Interceptor.Smtp.Upstream;
using static Interceptor.Tests.Smtp.Pool.PoolTestParts;

namespace Interceptor.Tests.Smtp.Pool;

/// <summary><see cref="RelayTarget"/>: the per-relay TLS policy and EHLO name, and idle sessions keyed by relay and login.</summary>
[TestFixture]
public class RelayTargetTests
{
    private static readonly RelayCredentials Logins = RelayCredentials.Parse("test", "alice alice-login pw1\nbob bob-login pw2\n* shared-login pw3\n");

    [Test]
    public void Sessions_are_kept_per_relay_and_login_line_so_one_site_never_gets_anothers_session()
    {
        var relay1 = new RelayTarget(Relays[0], Settings);
        var relay2 = new RelayTarget(Relays[1], Settings);

        Assert.That(relay1.ReuseKeyFor(Logins.For("alice")), Is.Not.EqualTo(relay1.ReuseKeyFor(Logins.For("bob"))));
        Assert.That(relay1.ReuseKeyFor(Logins.For("alice")), Is.Not.EqualTo(relay2.ReuseKeyFor(Logins.For("alice"))));
        Assert.That(relay1.ReuseKeyFor(Logins.For("alice")), Is.Not.EqualTo(relay1.ReuseKeyFor(null)));
        Assert.That(relay1.ReuseKeyFor(Logins.For("carol")), Is.EqualTo(relay1.ReuseKeyFor(Logins.For("dave"))), "both use the * login");
        Assert.That(relay1.ReuseKeyFor(Logins.For("alice")), Does.Not.Contain("pw1").And.Not.Contain("alice-login"));
    }

    [Test]
    public void Each_tls_policy_gives_its_settings()
    {
        var required = new RelayTarget(new SmarthostOptions { Name = "r", Host = "relay.example.net", Tls = SmarthostTls.Required }, Settings);
        var named = new RelayTarget(new SmarthostOptions { Name = "r", Host = "192.0.2.7", Tls = SmarthostTls.Required, TlsName = "mx.example.net" }, Settings);
        var opportunistic = new RelayTarget(new SmarthostOptions { Name = "r", Host = "relay.example.net", Tls = SmarthostTls.Opportunistic }, Settings);
        var none = new RelayTarget(Relays[0], Settings);

        Assert.That(required.Settings.UseStartTls, Is.True);
        Assert.That(required.Settings.VerifiedTls, Is.EqualTo(new UpstreamTlsVerification("relay.example.net", null)));
        Assert.That(named.Settings.VerifiedTls!.TargetName, Is.EqualTo("mx.example.net"));
        Assert.That(opportunistic.Settings.UseStartTls, Is.True);
        Assert.That(opportunistic.Settings.VerifiedTls, Is.Null);
        Assert.That(none.Settings.UseStartTls, Is.False);
        Assert.That(none.Settings.HeloName, Is.EqualTo(Helo));
        Assert.That(new RelayTarget(Relays[1], Settings).Settings.HeloName, Is.EqualTo("out.relay.test"));
    }

    [Test]
    public void A_ca_file_pins_the_chain_to_that_ca_and_one_without_a_certificate_is_refused_naming_it()
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-relay-ca-").FullName;
        try
        {
            using var key = System.Security.Cryptography.RSA.Create(2048);
            var request = new CertificateRequest("CN=test relay CA", key, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            var caFile = Path.Combine(directory, "ca.pem");
            File.WriteAllText(caFile, ca.ExportCertificatePem());
            var empty = Path.Combine(directory, "empty.pem");
            File.WriteAllText(empty, "not a certificate\n");

            var target = new RelayTarget(new SmarthostOptions { Name = "r", Host = "relay.example.net", CaFile = caFile }, Settings);
            var options = target.Settings.VerifiedTls!.ClientOptions();

            Assert.That(options.TargetHost, Is.EqualTo("relay.example.net"));
            Assert.That(options.CertificateChainPolicy!.TrustMode, Is.EqualTo(X509ChainTrustMode.CustomRootTrust));
            Assert.That(options.CertificateChainPolicy.CustomTrustStore.Single().Thumbprint, Is.EqualTo(ca.Thumbprint));
            Assert.That(() => new RelayTarget(new SmarthostOptions { Name = "r", Host = "relay.example.net", CaFile = empty }, Settings),
                Throws.InvalidOperationException.With.Message.Contains(empty));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
