using Interceptor.Smtp.Tls;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Tls;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class ReloadingClientCaTests
{
    private const uint Alice = 1001;

    [Test]
    public async Task A_renewed_ca_is_used_for_new_certificates_within_the_check_interval_without_a_restart()
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-reload-ca-").FullName;
        try
        {
            var (certificate, key) = (Path.Combine(directory, "ca.crt"), Path.Combine(directory, "ca.key"));
            var clock = new ManualClock(DateTimeOffset.UtcNow);
            ClientCertificateAuthority.Create(certificate, key, "one.test", clock);
            var logger = new RecordingLogger();
            using var ca = new ReloadingClientCa(certificate, key, TimeSpan.FromDays(7), 16, logger, clock);
            var first = await ca.Certificates.GetAsync("mx.example.net", Alice);

            // The admin renews it as the README says: both files removed, `client-ca create`.
            File.Delete(certificate);
            File.Delete(key);
            ClientCertificateAuthority.Create(certificate, key, "two.test", clock);
            clock.Advance(ReloadingClientCa.CheckInterval / 2);
            var beforeTheCheck = await ca.Certificates.GetAsync("mx.example.net", Alice);
            clock.Advance(ReloadingClientCa.CheckInterval);
            var after = await ca.Certificates.GetAsync("mx.example.net", Alice);

            Assert.Multiple(() =>
            {
                Assert.That(first.TargetCertificate.Issuer, Does.Contain("one.test"));
                Assert.That(beforeTheCheck, Is.SameAs(first), "the files are looked at every CheckInterval, not at every handshake");
                Assert.That(after.TargetCertificate.Issuer, Does.Contain("two.test"));
                Assert.That(logger.Lines, Has.One.Contains("reloaded"));
            });
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public async Task A_clock_stepped_back_does_not_stop_the_looks_at_the_files()
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-reload-ca-").FullName;
        try
        {
            var (certificate, key) = (Path.Combine(directory, "ca.crt"), Path.Combine(directory, "ca.key"));
            var clock = new ManualClock(DateTimeOffset.UtcNow);
            ClientCertificateAuthority.Create(certificate, key, "one.test", clock);
            using var ca = new ReloadingClientCa(certificate, key, TimeSpan.FromDays(7), 16, new RecordingLogger(), clock);

            File.Delete(certificate);
            File.Delete(key);
            ClientCertificateAuthority.Create(certificate, key, "two.test", new ManualClock(clock.Now.AddHours(-2)));
            clock.Advance(TimeSpan.FromHours(-1));
            var served = await ca.Certificates.GetAsync("mx.example.net", Alice);

            Assert.That(served.TargetCertificate.Issuer, Does.Contain("two.test"), "NTP stepped the clock back an hour: looked at anyway");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public async Task A_new_ca_that_cannot_be_used_is_refused_once_and_the_one_in_use_stays()
    {
        var directory = Directory.CreateTempSubdirectory("smtpi-reload-ca-").FullName;
        try
        {
            var (certificate, key) = (Path.Combine(directory, "ca.crt"), Path.Combine(directory, "ca.key"));
            var clock = new ManualClock(DateTimeOffset.UtcNow);
            ClientCertificateAuthority.Create(certificate, key, "one.test", clock);
            var logger = new RecordingLogger();
            using var ca = new ReloadingClientCa(certificate, key, TimeSpan.FromDays(7), 16, logger, clock);

            // A new pair whose key group and others may read: the daemon would refuse to start with it.
            File.Delete(certificate);
            File.Delete(key);
            ClientCertificateAuthority.Create(certificate, key, "two.test", clock);
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            for (var i = 0; i < 3; i++)
            {
                clock.Advance(ReloadingClientCa.CheckInterval);
                _ = ca.Certificates;
            }

            var served = await ca.Certificates.GetAsync("mx.example.net", Alice);
            Assert.Multiple(() =>
            {
                Assert.That(served.TargetCertificate.Issuer, Does.Contain("one.test"));
                Assert.That(logger.Lines.Count(l => l.Contains("cannot be used", StringComparison.Ordinal)), Is.EqualTo(1), "once per change of the files");
                Assert.That(logger.Lines, Has.Some.Contains("mode 0644"));
            });

            // A pair refused for what the files do not show (here a CA valid only from an hour on, made with a clock two hours ahead; on a host, a key the
            // daemon's user cannot read until a chown) is tried again at every check, and logged once.
            File.Delete(certificate);
            File.Delete(key);
            ClientCertificateAuthority.Create(certificate, key, "three.test", new ManualClock(clock.Now.AddHours(2)));
            clock.Advance(ReloadingClientCa.CheckInterval);
            Assert.That((await ca.Certificates.GetAsync("mx.example.net", Alice)).TargetCertificate.Issuer, Does.Contain("one.test"));
            clock.Advance(TimeSpan.FromHours(1));
            Assert.That((await ca.Certificates.GetAsync("mx.example.net", Alice)).TargetCertificate.Issuer, Does.Contain("three.test"));
            Assert.That(logger.Lines.Count(l => l.Contains("cannot be used", StringComparison.Ordinal)), Is.EqualTo(2));
            Assert.That(logger.Lines, Has.Some.Contains("is not valid now"));

            // Then a pair with a key others may read, fixed with a chmod: taken at the next check.
            File.Delete(certificate);
            File.Delete(key);
            ClientCertificateAuthority.Create(certificate, key, "two.test", clock);
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            clock.Advance(ReloadingClientCa.CheckInterval);
            _ = ca.Certificates;
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            clock.Advance(ReloadingClientCa.CheckInterval);
            var fixedUp = await ca.Certificates.GetAsync("mx.example.net", Alice);
            Assert.That(fixedUp.TargetCertificate.Issuer, Does.Contain("two.test"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
