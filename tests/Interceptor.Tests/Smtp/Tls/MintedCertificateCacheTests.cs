using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Interceptor.Smtp.Tls;
using Interceptor.Tests.TestDoubles;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Tls;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class MintedCertificateCacheTests
{
    [Test]
    public async Task A_name_is_minted_once_and_served_from_the_cache_after()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 4);

        var first = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => cache.GetAsync("mx.example.net")));
        var again = await cache.GetAsync("mx.example.net");

        Assert.That(cache.Minted, Is.EqualTo(1));
        Assert.That(first.Distinct().Single(), Is.SameAs(again));
        Assert.That(again.TargetCertificate.GetNameInfo(X509NameType.DnsName, false), Is.EqualTo("mx.example.net"));
    }

    [Test]
    public async Task The_cache_is_bounded_and_evicts_the_least_recently_used_name()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 2);

        await cache.GetAsync("a.test");
        await cache.GetAsync("b.test");
        await cache.GetAsync("a.test");   // a is now the most recent
        await cache.GetAsync("c.test");   // evicts b
        await cache.GetAsync("a.test");
        Assert.That(cache.Minted, Is.EqualTo(3), "a stayed cached");
        await cache.GetAsync("b.test");

        Assert.That(cache.Count, Is.EqualTo(2));
        Assert.That(cache.Minted, Is.EqualTo(4), "b was evicted and minted again");
    }

    [Test]
    public async Task A_slow_minting_never_holds_up_a_name_that_is_ready()
    {
        using var ca = TestClientCa.Load();
        using var slowGate = new ManualResetEventSlim();
        var cache = new MintedCertificateCache(
            name =>
            {
                if (name == "slow.test")
                {
                    slowGate.Wait(TimeSpan.FromSeconds(20));
                }

                return ca.Mint(name, TimeSpan.FromDays(1));
            },
            ca.Certificate,
            capacity: 8);
        await cache.GetAsync("ready.test");

        var slow = cache.GetAsync("slow.test");
        var ready = cache.GetAsync("ready.test");
        var fresh = cache.GetAsync("fresh.test");

        Assert.That(ready.IsCompletedSuccessfully, Is.True, "a cached name is answered at once");
        await fresh.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(slow.IsCompleted, Is.False, "the slow one is still minting");
        slowGate.Set();
        await slow.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Test]
    public async Task A_failed_minting_is_not_cached()
    {
        using var ca = TestClientCa.Load();
        var failures = new ConcurrentQueue<string>();
        var fail = true;
        var cache = new MintedCertificateCache(
            name =>
            {
                if (fail)
                {
                    failures.Enqueue(name);
                    throw new InvalidOperationException("no entropy today");
                }

                return ca.Mint(name, TimeSpan.FromDays(1));
            },
            ca.Certificate,
            capacity: 8);

        Assert.ThrowsAsync<InvalidOperationException>(() => cache.GetAsync("x.test"));
        await UntilAsync(() => cache.Count == 0);
        fail = false;
        var context = await cache.GetAsync("x.test");

        Assert.That(context.TargetCertificate.Subject, Is.EqualTo("CN=x.test"));
        Assert.That(failures, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_certificate_is_minted_again_once_less_than_a_quarter_of_its_validity_is_left()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var ca = ClientCertificateAuthority.Load(TestClientCa.CertificatePath, TestClientCa.KeyPath, clock);
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(7)), ca.Certificate, capacity: 4, clock);
        var first = await cache.GetAsync("mx.example.net");

        // Valid 7 days and an hour: renewed from 1 day 18¼ hours before its end, not before.
        clock.Advance(TimeSpan.FromDays(5));
        var kept = await cache.GetAsync("mx.example.net");
        clock.Advance(TimeSpan.FromDays(1));
        var renewed = await cache.GetAsync("mx.example.net");
        var again = await cache.GetAsync("mx.example.net");

        Assert.Multiple(() =>
        {
            Assert.That(kept, Is.SameAs(first), "three quarters of its validity not yet used");
            Assert.That(renewed, Is.Not.SameAs(first));
            Assert.That(cache.Minted, Is.EqualTo(2));
            Assert.That(renewed.TargetCertificate.NotAfter.ToUniversalTime(), Is.EqualTo(clock.Now.UtcDateTime.AddDays(7)).Within(TimeSpan.FromSeconds(1)));
            Assert.That(again, Is.SameAs(renewed), "the new one is cached in its place");
            Assert.That(cache.Count, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_certificate_cut_short_by_the_cas_own_end_is_not_minted_again_at_every_handshake()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var ca = ClientCertificateAuthority.Load(TestClientCa.CertificatePath, TestClientCa.KeyPath, clock);
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(7)), ca.Certificate, capacity: 4, clock);
        clock.Now = new DateTimeOffset(ca.Certificate.NotAfter.ToUniversalTime()).AddDays(-2);

        var first = await cache.GetAsync("mx.example.net");
        clock.Advance(TimeSpan.FromDays(1.5));
        var later = await cache.GetAsync("mx.example.net");

        Assert.That(first.TargetCertificate.NotAfter, Is.EqualTo(ca.Certificate.NotAfter), "never past the CA");
        Assert.That(later, Is.SameAs(first), "a new one would end no later");
        Assert.That(cache.Minted, Is.EqualTo(1));

        // Past the CA's end the expired leaf is not served: the minting says why (the session logs it, event 1316).
        clock.Advance(TimeSpan.FromDays(1));
        Assert.ThrowsAsync<System.Security.Cryptography.CryptographicException>(() => cache.GetAsync("mx.example.net"));
    }

    [TestCase("MX.Example.NET.", "198.51.100.7", "mx.example.net")]
    [TestCase("mx.example.net\n", "198.51.100.7", "198.51.100.7")]
    [TestCase("mx.example.net\r\n", "198.51.100.7", "198.51.100.7")]
    [TestCase(null, "198.51.100.7", "198.51.100.7")]
    [TestCase("", "::ffff:198.51.100.7", "198.51.100.7")]
    [TestCase("198.51.100.9", "198.51.100.7", "198.51.100.7")]
    [TestCase("bad name; CN=evil", "2001:db8::25", "2001:db8::25")]
    [TestCase("under_score.test", "198.51.100.7", "198.51.100.7")]
    public void The_certificate_names_the_sni_host_name_else_the_dialled_address(string? sni, string dialled, string expected)
    {
        Assert.That(ClientTlsServer.CertificateName(sni, IPAddress.Parse(dialled)), Is.EqualTo(expected));
    }

    private static async Task UntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.That(condition(), Is.True);
    }
}
