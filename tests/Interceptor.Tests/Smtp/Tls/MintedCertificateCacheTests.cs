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
    private const uint Alice = 1001;
    private const uint Bob = 1002;

    [Test]
    public async Task A_name_is_minted_once_and_served_from_the_cache_after()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 4);

        var first = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => cache.GetAsync("mx.example.net", Alice)));
        var again = await cache.GetAsync("mx.example.net", Alice);

        Assert.That(cache.Minted, Is.EqualTo(1));
        Assert.That(first.Distinct().Single(), Is.SameAs(again));
        Assert.That(again.TargetCertificate.GetNameInfo(X509NameType.DnsName, false), Is.EqualTo("mx.example.net"));
    }

    [Test]
    public async Task The_cache_is_bounded_and_evicts_the_least_recently_used_name()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 2);

        await cache.GetAsync("a.test", Alice);
        await cache.GetAsync("b.test", Alice);
        await cache.GetAsync("a.test", Alice);   // a is now the most recent
        await cache.GetAsync("c.test", Alice);   // evicts b
        await cache.GetAsync("a.test", Alice);
        Assert.That(cache.Minted, Is.EqualTo(3), "a stayed cached");
        await cache.GetAsync("b.test", Alice);

        Assert.That(cache.Count, Is.EqualTo(2));
        Assert.That(cache.Minted, Is.EqualTo(4), "b was evicted and minted again");
    }

    [Test]
    public async Task A_user_asking_for_fresh_names_pushes_out_her_own_not_a_neighbours()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 4);
        var bobs = await cache.GetAsync("mx.bob.test", Bob);
        await cache.GetAsync("relay.bob.test", Bob);

        for (var i = 0; i < 12; i++)
        {
            await cache.GetAsync($"fresh{i}.alice.test", Alice);
        }

        var minted = cache.Minted;
        var again = await cache.GetAsync("mx.bob.test", Bob);
        await cache.GetAsync("relay.bob.test", Bob);
        var hers = await cache.GetAsync("fresh11.alice.test", Alice);
        Assert.Multiple(() =>
        {
            Assert.That(cache.Count, Is.EqualTo(4));
            Assert.That(again, Is.SameAs(bobs), "bob's names stay while alice churns through hers");
            Assert.That(cache.Minted, Is.EqualTo(minted), "nothing minted again: bob's two and alice's latest two are cached");
            Assert.That(hers.TargetCertificate.Subject, Is.EqualTo("CN=fresh11.alice.test"));
        });
    }

    [Test]
    public async Task A_name_another_user_asked_for_first_is_charged_to_whoever_used_it_last()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 4);

        // Alice asks first for the big provider's MX that bob's site sends to, then churns fresh names.
        await cache.GetAsync("mx.provider.test", Alice);
        var bobs = await cache.GetAsync("mx.provider.test", Bob);
        for (var i = 0; i < 12; i++)
        {
            await cache.GetAsync($"fresh{i}.alice.test", Alice);
        }

        var minted = cache.Minted;
        var again = await cache.GetAsync("mx.provider.test", Bob);
        Assert.That(again, Is.SameAs(bobs), "bob used it last: it is in his share, not hers");
        Assert.That(cache.Minted, Is.EqualTo(minted));
    }

    [Test]
    public async Task A_neighbour_holding_more_names_than_the_asker_gives_up_his_oldest_down_to_an_even_share()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 4);
        foreach (var name in new[] { "b1.test", "b2.test", "b3.test" })
        {
            await cache.GetAsync(name, Bob);
        }

        await cache.GetAsync("a1.test", Alice);
        await cache.GetAsync("a2.test", Alice);   // bob holds 3 of 5: his oldest goes
        await cache.GetAsync("a3.test", Alice);   // now she holds 3 of 5: her oldest goes
        var minted = cache.Minted;

        await cache.GetAsync("b2.test", Bob);
        await cache.GetAsync("b3.test", Bob);
        await cache.GetAsync("a3.test", Alice);
        await cache.GetAsync("a2.test", Alice);
        Assert.That(cache.Minted, Is.EqualTo(minted), "b2, b3, a2 and a3 were kept");
        await cache.GetAsync("b1.test", Bob);
        Assert.That(cache.Minted, Is.EqualTo(minted + 1), "b1, bob's oldest, was given up");
    }

    [Test]
    public async Task With_more_users_than_room_each_holding_one_name_the_newest_is_kept()
    {
        using var ca = TestClientCa.Load();
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(1)), ca.Certificate, capacity: 2);
        for (uint uid = 2000; uid < 2004; uid++)
        {
            await cache.GetAsync($"mx{uid}.test", uid);
        }

        var minted = cache.Minted;
        await cache.GetAsync("mx2003.test", 2003);
        Assert.That(cache.Count, Is.EqualTo(2));
        Assert.That(cache.Minted, Is.EqualTo(minted), "the last user's name was cached, not evicted as soon as it was added");
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
        await cache.GetAsync("ready.test", Alice);

        var slow = cache.GetAsync("slow.test", Alice);
        var ready = cache.GetAsync("ready.test", Alice);
        var fresh = cache.GetAsync("fresh.test", Alice);

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

        Assert.ThrowsAsync<InvalidOperationException>(() => cache.GetAsync("x.test", Alice));
        await UntilAsync(() => cache.Count == 0);
        fail = false;
        var context = await cache.GetAsync("x.test", Alice);

        Assert.That(context.TargetCertificate.Subject, Is.EqualTo("CN=x.test"));
        Assert.That(failures, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_certificate_is_minted_again_once_less_than_a_quarter_of_its_validity_is_left()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var ca = ClientCertificateAuthority.Load(TestClientCa.CertificatePath, TestClientCa.KeyPath, clock);
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(7)), ca.Certificate, capacity: 4, clock);
        var first = await cache.GetAsync("mx.example.net", Alice);

        // Valid 7 days and an hour: renewed from 1 day 18¼ hours before its end, not before.
        clock.Advance(TimeSpan.FromDays(5));
        var kept = await cache.GetAsync("mx.example.net", Alice);
        Assert.That(cache.Minted, Is.EqualTo(1), "three quarters of its validity not yet used");

        // The handshake that finds it due is not held up: the old one is still valid and served while the new one is minted.
        clock.Advance(TimeSpan.FromDays(1));
        var during = await cache.GetAsync("mx.example.net", Alice);
        await UntilAsync(() => cache.Minted == 2);
        var renewed = await UntilServedAsync(cache, "mx.example.net", c => !ReferenceEquals(c, first));
        var again = await cache.GetAsync("mx.example.net", Alice);

        Assert.Multiple(() =>
        {
            Assert.That(kept, Is.SameAs(first));
            Assert.That(during, Is.SameAs(first));
            Assert.That(cache.Minted, Is.EqualTo(2), "one renewal, however many handshakes asked meanwhile");
            Assert.That(renewed.TargetCertificate.NotAfter.ToUniversalTime(), Is.EqualTo(clock.Now.UtcDateTime.AddDays(7)).Within(TimeSpan.FromSeconds(1)));
            Assert.That(again, Is.SameAs(renewed), "the new one is cached in its place");
            Assert.That(cache.Count, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_renewal_that_fails_keeps_the_old_certificate_while_it_is_valid_and_tries_again_a_minute_later()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var ca = ClientCertificateAuthority.Load(TestClientCa.CertificatePath, TestClientCa.KeyPath, clock);
        var fail = false;
        var tries = 0;
        var cache = new MintedCertificateCache(
            name =>
            {
                Interlocked.Increment(ref tries);
                return fail ? throw new InvalidOperationException("no entropy today") : ca.Mint(name, TimeSpan.FromDays(7));
            },
            ca.Certificate,
            capacity: 4,
            clock);
        var first = await cache.GetAsync("mx.example.net", Alice);

        fail = true;
        clock.Advance(TimeSpan.FromDays(6));
        var during = await cache.GetAsync("mx.example.net", Alice);
        await UntilAsync(() => cache.RenewalsFailed == 1);
        var afterFailure = await cache.GetAsync("mx.example.net", Alice);
        clock.Advance(MintedCertificateCache.RenewalRetry - TimeSpan.FromSeconds(1));
        var withinTheMinute = await cache.GetAsync("mx.example.net", Alice);
        Assert.Multiple(() =>
        {
            Assert.That(during, Is.SameAs(first));
            Assert.That(afterFailure, Is.SameAs(first), "kept: it is valid for another day");
            Assert.That(withinTheMinute, Is.SameAs(first));
            Assert.That(tries, Is.EqualTo(2), "not tried again at every handshake");
        });

        fail = false;
        clock.Advance(TimeSpan.FromSeconds(1));
        await cache.GetAsync("mx.example.net", Alice);
        var renewed = await UntilServedAsync(cache, "mx.example.net", c => !ReferenceEquals(c, first));
        Assert.That(tries, Is.EqualTo(3));
        Assert.That(renewed.TargetCertificate.NotAfter.ToUniversalTime(), Is.EqualTo(clock.Now.UtcDateTime.AddDays(7)).Within(TimeSpan.FromSeconds(1)));

        // An expired one is never served: with every renewal failing, the handshake gets the minting's failure.
        fail = true;
        clock.Advance(TimeSpan.FromDays(7.1));
        Assert.ThrowsAsync<InvalidOperationException>(() => cache.GetAsync("mx.example.net", Alice));
    }

    [Test]
    public async Task A_certificate_cut_short_by_the_cas_own_end_is_not_minted_again_at_every_handshake()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        using var ca = ClientCertificateAuthority.Load(TestClientCa.CertificatePath, TestClientCa.KeyPath, clock);
        var cache = new MintedCertificateCache(name => ca.Mint(name, TimeSpan.FromDays(7)), ca.Certificate, capacity: 4, clock);
        clock.Now = new DateTimeOffset(ca.Certificate.NotAfter.ToUniversalTime()).AddDays(-2);

        var first = await cache.GetAsync("mx.example.net", Alice);
        clock.Advance(TimeSpan.FromDays(1.5));
        var later = await cache.GetAsync("mx.example.net", Alice);

        Assert.That(first.TargetCertificate.NotAfter, Is.EqualTo(ca.Certificate.NotAfter), "never past the CA");
        Assert.That(later, Is.SameAs(first), "a new one would end no later");
        Assert.That(cache.Minted, Is.EqualTo(1));

        // Past the CA's end the expired leaf is not served: the minting says why (the session logs it, event 1316).
        clock.Advance(TimeSpan.FromDays(1));
        Assert.ThrowsAsync<System.Security.Cryptography.CryptographicException>(() => cache.GetAsync("mx.example.net", Alice));
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

    private static async Task<System.Net.Security.SslStreamCertificateContext> UntilServedAsync(
        MintedCertificateCache cache, string name, Func<System.Net.Security.SslStreamCertificateContext, bool> condition)
    {
        for (var i = 0; i < 200; i++)
        {
            var context = await cache.GetAsync(name, Alice);
            if (condition(context))
            {
                return context;
            }

            await Task.Delay(25);
        }

        Assert.Fail("the cache kept serving the old certificate");
        return null!;
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
