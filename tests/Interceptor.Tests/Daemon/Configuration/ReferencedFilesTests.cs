using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Configuration;

/// <summary>The files a configuration names, checked by check-config and at run's start, each problem named by its key.</summary>
[TestFixture]
public class ReferencedFilesTests
{
    private string _directory = "";

    [SetUp]
    public void CreateDirectory()
    {
        // 0755, as /etc is: the checks for nobody would otherwise also name this directory, which nobody may not search.
        _directory = Directory.CreateTempSubdirectory("smtpi-files-").FullName;
        File.SetUnixFileMode(_directory, (UnixFileMode)0x1ED);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_directory, recursive: true);

    private static InterceptorOptions WithRelay(SmarthostOptions relay, string credentials = "") => new()
    {
        Relay = new RelayOptions { Smarthosts = [relay], CredentialsFile = credentials },
    };

    private static SmarthostOptions Relay(string caFile, SmarthostTls tls = SmarthostTls.Required) =>
        new() { Name = "relay1", Host = "192.0.2.10", Tls = tls, CaFile = caFile };

    private string Write(string name, string text, UnixFileMode mode)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private static string SelfSignedPem()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Test relay CA", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return certificate.ExportCertificatePem();
    }

    [Test]
    public void The_defaults_name_no_file_and_have_no_problem() =>
        Assert.That(ReferencedFiles.Problems(new InterceptorOptions()), Is.Empty);

    [Test]
    public void A_relay_ca_file_that_does_not_exist_is_named_by_its_key_and_path()
    {
        var missing = Path.Combine(_directory, "missing-ca.pem");

        var problems = ReferencedFiles.Problems(WithRelay(Relay(missing)));

        Assert.That(problems, Has.Count.EqualTo(1));
        Assert.That(problems[0], Does.StartWith("Relay.Smarthosts[0].CaFile: " + missing + ": cannot read the CA certificates"));
        Assert.That(ReferencedFiles.SmarthostCaProblems(WithRelay(Relay(missing)).Relay), Is.EqualTo(problems), "run checks the same");
    }

    [Test]
    public void A_relay_ca_file_without_a_certificate_is_named()
    {
        var empty = Write("ca.pem", "not a certificate\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var problems = ReferencedFiles.Problems(WithRelay(Relay(empty)));

        Assert.That(problems, Is.EqualTo(new[] { $"Relay.Smarthosts[0].CaFile: {empty}: holds no PEM certificate" }));
    }

    [Test]
    public void A_readable_relay_ca_passes_and_a_ca_file_the_tls_policy_does_not_use_is_not_opened()
    {
        var good = Write("ca.pem", SelfSignedPem(), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var missing = Path.Combine(_directory, "missing-ca.pem");

        Assert.That(ReferencedFiles.Problems(WithRelay(Relay(good))), Is.Empty);
        Assert.That(ReferencedFiles.Problems(WithRelay(Relay(missing, SmarthostTls.Opportunistic))), Is.Empty, "only Tls Required verifies against the CA");
    }

    [Test]
    public void A_credentials_file_others_may_read_is_named_with_its_mode()
    {
        var credentials = Write("credentials", "* relaylogin secret\n", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var problems = ReferencedFiles.Problems(WithRelay(Relay(""), credentials));

        Assert.That(problems, Has.Count.EqualTo(1));
        Assert.That(problems[0], Does.StartWith("Relay.CredentialsFile: " + credentials).And.Contain("0604"));
        Assert.That(problems[0], Does.Not.Contain("secret"), "a problem never shows the password");
    }

    [Test]
    public void The_private_files_must_be_the_daemons_users_whoever_checks()
    {
        // As check-config run by root for a daemon that runs as nobody (--daemon-user nobody): root can read root's files,
        // the daemon could not.
        var credentials = Write("credentials", "* relaylogin secret\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var token = Write("token", "0123456789abcdef0123\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var options = WithRelay(Relay(""), credentials) with { Metrics = new MetricsOptions { BearerTokenFile = token } };
        const uint nobody = 65534;

        var problems = ReferencedFiles.Problems(options, nobody);

        Assert.That(problems, Is.EqualTo(new[]
        {
            $"Relay.CredentialsFile: {credentials}: is owned by uid 0 (root), which keeps the daemon's user (uid {nobody} (nobody)) from reading it; run chown nobody {credentials}",
            $"Metrics.BearerTokenFile: {token}: is owned by uid 0 (root), which keeps the daemon's user (uid {nobody} (nobody)) from reading it; run chown nobody {token}",
        }));
        Assert.That(ReferencedFiles.Problems(options), Is.Empty, "for this process (root) as the daemon, they are fine");
        foreach (var file in new[] { credentials, token })
        {
            using var chown = System.Diagnostics.Process.Start("chown", ["nobody", file]);
            chown.WaitForExit();
        }

        Assert.That(ReferencedFiles.Problems(options, nobody), Is.Empty, "once chowned to nobody");
    }

    [Test]
    public void A_client_ca_that_was_never_created_is_named_with_the_command_that_creates_it()
    {
        var options = new InterceptorOptions
        {
            ClientTls = new ClientTlsOptions
            {
                Mode = ClientTlsMode.Mint,
                CaCertificate = Path.Combine(_directory, "ca.crt"),
                CaKey = Path.Combine(_directory, "ca.key"),
            },
        };

        var problems = ReferencedFiles.Problems(options);

        Assert.That(problems, Has.Count.EqualTo(1));
        Assert.That(problems[0], Does.StartWith("ClientTls.CaKey: ").And.Contain("client-ca create"));
    }

    [Test]
    public void Files_the_daemons_user_may_not_reach_or_read_are_named_by_a_check_made_as_root_for_it()
    {
        // Root reads them all; nobody may not read root's 0600 CA key, nor reach anything in a directory of root's 0700.
        // The domains map is not judged: an unreadable one is logged and the daemon starts.
        const uint nobody = 65534;
        var certificate = Path.Combine(_directory, "ca.crt");
        var key = Path.Combine(_directory, "ca.key");
        Interceptor.Smtp.Tls.ClientCertificateAuthority.Create(certificate, key, "host.example");
        var hidden = Directory.CreateDirectory(Path.Combine(_directory, "hidden"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
        var ca = Path.Combine(hidden, "relay-ca.pem");
        File.WriteAllText(ca, SelfSignedPem());
        var token = Path.Combine(hidden, "token");
        File.WriteAllText(token, "0123456789abcdef0123\n");
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var domains = Path.Combine(hidden, "domains");
        File.WriteAllText(domains, "nobody: example.com\n");
        var options = WithRelay(Relay(ca)) with
        {
            ClientTls = new ClientTlsOptions { Mode = ClientTlsMode.Mint, CaCertificate = certificate, CaKey = key },
            Domains = new DomainsOptions { Source = DomainSource.File, File = domains },
            Metrics = new MetricsOptions { BearerTokenFile = token },
        };
        Chown("nobody", token);

        var problems = ReferencedFiles.Problems(options, nobody);

        var user = $"the daemon's user (uid {nobody} (nobody))";
        Assert.That(problems, Is.EqualTo(new[]
        {
            $"Metrics.BearerTokenFile: {token}: {user} may not search {hidden} (owner uid 0 (root), gid 0, mode 0700); it must be able to search every directory on the path (let it search that one, or move the file)",
            $"Relay.Smarthosts[0].CaFile: {ca}: {user} may not search {hidden} (owner uid 0 (root), gid 0, mode 0700); it must be able to search every directory on the path (let it search that one, or move the file)",
            $"ClientTls.CaKey: {key}: {user} may not read it (owner uid 0 (root), gid 0, mode 0600); run chown nobody {key}",
        }), "the certificate (0644) is readable");
        Assert.That(ReferencedFiles.Problems(options with { Metrics = new MetricsOptions() }), Is.Empty, "for this process (root) as the daemon, they are fine");
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1C8);
        Assert.That(ReferencedFiles.Problems(options, nobody, [0]), Has.Count.EqualTo(1).And.All.StartWith("ClientTls.CaKey: "), "in root's group (--daemon-groups), hidden 0710 may be searched");
        File.SetUnixFileMode(hidden, (UnixFileMode)0x1ED);
        Chown("nobody", key);

        Assert.That(ReferencedFiles.Problems(options, nobody), Is.Empty, "the directory opened and the key chowned to nobody");
        File.SetUnixFileMode(key, UnixFileMode.UserWrite);
        Assert.That(ReferencedFiles.Problems(options, nobody), Is.EqualTo(new[] { $"ClientTls.CaKey: {key}: {user} may not read it (owner uid {nobody} (nobody), gid 0, mode 0200); run chmod 600 {key}" }),
            "its own key it may not read: the mode, not a chown");
    }

    [Test]
    public void A_file_the_daemons_user_may_not_read_in_a_directory_another_user_may_change_gets_no_command()
    {
        // The relay CA sits in a customer's directory (uid 4244 here): "chmod a+r" pasted as root would follow a link she
        // swapped in meanwhile, to /etc/shadow. With that directory root's, the command is given.
        const uint nobody = 65534;
        var theirs = Directory.CreateDirectory(Path.Combine(_directory, "theirs")).FullName;
        var ca = Path.Combine(theirs, "relay-ca.pem");
        File.WriteAllText(ca, SelfSignedPem());
        File.SetUnixFileMode(ca, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Chown("4244", theirs);

        var user = $"the daemon's user (uid {nobody} (nobody))";
        Assert.That(ReferencedFiles.Problems(WithRelay(Relay(ca)), nobody), Is.EqualTo(new[]
        {
            $"Relay.Smarthosts[0].CaFile: {ca}: {user} may not read it (owner uid 0 (root), gid 0, mode 0600); no command is given, as {theirs} (owner uid 4244, gid 0, mode 0755) "
            + "may be changed by users other than root, who could put a link there for a pasted command to follow; make the file anew from a copy you trust "
            + "(moving or copying this one could carry such a link or access along) in a directory only root may change, such as /etc/smtp-interceptor; make it readable "
            + "by all (mode 0644) and point the option at it",
        }));
        Chown("root", theirs);
        Assert.That(ReferencedFiles.Problems(WithRelay(Relay(ca)), nobody), Is.EqualTo(new[] { $"Relay.Smarthosts[0].CaFile: {ca}: {user} may not read it (owner uid 0 (root), gid 0, mode 0600); run chmod a+r {ca}" }));
    }

    private static void Chown(string owner, string path)
    {
        using var chown = System.Diagnostics.Process.Start("chown", [owner, path]);
        chown.WaitForExit();
        Assert.That(chown.ExitCode, Is.Zero, $"chown {owner} {path}");
    }

    [Test]
    public void A_file_the_daemons_unit_hides_from_it_is_named_where_the_kernels_lookup_leads()
    {
        // hidden stands for the unit's /tmp: the token in it by its own path, the relay CA by a link from outside it.
        var hidden = Directory.CreateDirectory(Path.Combine(_directory, "hidden")).FullName;
        var token = Path.Combine(hidden, "token");
        File.WriteAllText(token, "0123456789abcdef0123\n");
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(Path.Combine(hidden, "ca.pem"), SelfSignedPem());
        var ca = Path.Combine(_directory, "ca.pem");
        File.CreateSymbolicLink(ca, Path.Combine(hidden, "ca.pem"));
        var options = WithRelay(Relay(ca)) with { Metrics = new MetricsOptions { BearerTokenFile = token } };
        const string unit = "which the daemon's unit hides from it or gives it its own of (ProtectHome=, PrivateTmp=); keep it under /etc/smtp-interceptor";

        Assert.That(ReferencedFiles.Problems(options, 0, hidden: [hidden]), Is.EqualTo(new[]
        {
            $"Metrics.BearerTokenFile: {token}: is under {hidden}, {unit}",
            $"Relay.Smarthosts[0].CaFile: {ca}: is under {hidden}, {unit}",
        }));
        Assert.That(ReferencedFiles.Problems(options, 0, hidden: ["/home", "/root", "/run/user"]), Is.Empty, "elsewhere");
        Assert.That(ReferencedFiles.Problems(options, 0), Is.Empty, "no sandbox given");
    }
}
