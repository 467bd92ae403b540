using Interceptor.Smtp.Tls;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Tls;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class ReloadingClientCaTests
{
    private const uint Alice = 1001;
    private const string Name = "mx.example.net";

    [Test]
    public async Task A_renewed_ca_is_used_for_new_certificates_within_the_check_interval_without_a_restart()
    {
        using var files = new CaFiles("one.test");
        using var ca = files.Reloading();
        var first = await ca.Certificates.GetAsync(Name, Alice);

        // The admin renews it as the README says: both files removed, `client-ca create`.
        files.Renew("two.test");
        files.Clock.Advance(ReloadingClientCa.CheckInterval / 2);
        var beforeTheCheck = await ca.Certificates.GetAsync(Name, Alice);
        files.Clock.Advance(ReloadingClientCa.CheckInterval);
        var after = await ca.Certificates.GetAsync(Name, Alice);

        Assert.Multiple(() =>
        {
            Assert.That(first.TargetCertificate.Issuer, Does.Contain("one.test"));
            Assert.That(beforeTheCheck, Is.SameAs(first), "the files are looked at every CheckInterval, not at every handshake");
            Assert.That(after.TargetCertificate.Issuer, Does.Contain("two.test"));
            Assert.That(files.Logger.Lines, Has.One.Contains("reloaded"));
        });
    }

    [Test]
    public async Task A_clock_stepped_back_does_not_stop_the_looks_at_the_files()
    {
        using var files = new CaFiles("one.test");
        using var ca = files.Reloading();

        files.Renew("two.test", new ManualClock(files.Clock.Now.AddHours(-2)));
        files.Clock.Advance(TimeSpan.FromHours(-1));
        var served = await ca.Certificates.GetAsync(Name, Alice);

        Assert.That(served.TargetCertificate.Issuer, Does.Contain("two.test"), "NTP stepped the clock back an hour: looked at anyway");
    }

    [Test]
    public async Task A_new_ca_that_cannot_be_used_is_refused_once_and_the_one_in_use_stays()
    {
        using var files = new CaFiles("one.test");
        using var ca = files.Reloading();
        var refusals = () => files.Logger.Lines.Count(l => l.Contains("cannot be used", StringComparison.Ordinal));

        // A new pair whose key group and others may read: the daemon would refuse to start with it.
        files.Renew("two.test");
        files.OpenKeyToEveryone();
        for (var i = 0; i < 3; i++)
        {
            files.Clock.Advance(ReloadingClientCa.CheckInterval);
            _ = ca.Certificates;
        }

        var served = await ca.Certificates.GetAsync(Name, Alice);
        Assert.Multiple(() =>
        {
            Assert.That(served.TargetCertificate.Issuer, Does.Contain("one.test"));
            Assert.That(refusals(), Is.EqualTo(1), "once per change of the files");
            Assert.That(files.Logger.Lines, Has.Some.Contains("mode 0644"));
        });

        // A pair refused for what the files do not show (here a CA valid only from an hour on, made with a clock two hours
        // ahead; on a host, a key the daemon's user cannot read until a chown) is tried again at every check, logged once.
        files.Renew("three.test", new ManualClock(files.Clock.Now.AddHours(2)));
        files.Clock.Advance(ReloadingClientCa.CheckInterval);
        Assert.That((await ca.Certificates.GetAsync(Name, Alice)).TargetCertificate.Issuer, Does.Contain("one.test"));
        files.Clock.Advance(TimeSpan.FromHours(1));
        Assert.That((await ca.Certificates.GetAsync(Name, Alice)).TargetCertificate.Issuer, Does.Contain("three.test"));
        Assert.That(refusals(), Is.EqualTo(2));
        Assert.That(files.Logger.Lines, Has.Some.Contains("is not valid now"));

        // Then a pair with a key others may read, fixed with a chmod: taken at the next check.
        files.Renew("two.test");
        files.OpenKeyToEveryone();
        files.Clock.Advance(ReloadingClientCa.CheckInterval);
        _ = ca.Certificates;
        File.SetUnixFileMode(files.Key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        files.Clock.Advance(ReloadingClientCa.CheckInterval);
        var fixedUp = await ca.Certificates.GetAsync(Name, Alice);
        Assert.That(fixedUp.TargetCertificate.Issuer, Does.Contain("two.test"));
    }

    /// <summary>A CA's two files in a directory of their own, a manual clock and a logger, for one test.</summary>
    private sealed class CaFiles : IDisposable
    {
        private readonly string _directory = Directory.CreateTempSubdirectory("smtpi-reload-ca-").FullName;

        public CaFiles(string host)
        {
            (Certificate, Key) = (Path.Combine(_directory, "ca.crt"), Path.Combine(_directory, "ca.key"));
            ClientCertificateAuthority.Create(Certificate, Key, host, Clock);
        }

        public string Certificate { get; }

        public string Key { get; }

        public ManualClock Clock { get; } = new(DateTimeOffset.UtcNow);

        public RecordingLogger Logger { get; } = new();

        public ReloadingClientCa Reloading() => new(Certificate, Key, TimeSpan.FromDays(7), 16, Logger, Clock);

        /// <summary>Both files removed, then `client-ca create` (with <paramref name="madeAt"/>'s clock, else the test's).</summary>
        public void Renew(string host, TimeProvider? madeAt = null)
        {
            File.Delete(Certificate);
            File.Delete(Key);
            ClientCertificateAuthority.Create(Certificate, Key, host, madeAt ?? Clock);
        }

        public void OpenKeyToEveryone() =>
            File.SetUnixFileMode(Key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        public void Dispose() => Directory.Delete(_directory, recursive: true);
    }
}
