using System.Net;
using Interceptor.Daemon.Domains;

namespace Interceptor.Tests.Daemon.Domains;

[TestFixture]
public sealed class SpfEvaluatorTests
{
    private static Task<SpfResult> EvaluateAsync(FakeTxtLookup dns, string address = "203.0.113.5", string domain = "example.test") =>
        new SpfEvaluator(dns).EvaluateAsync(domain, IPAddress.Parse(address), CancellationToken.None);

    [TestCase("v=spf1 ip4:203.0.113.5 -all", SpfVerdict.Pass)]
    [TestCase("v=spf1 ip4:203.0.113.0/24 -all", SpfVerdict.Pass)]
    [TestCase("v=spf1 ip4:203.0.113.77/24 -all", SpfVerdict.Pass)]
    [TestCase("v=spf1 ip4:203.0.113.0/29 -all", SpfVerdict.Pass)]
    [TestCase("v=spf1 ip4:203.0.113.0/30 -all", SpfVerdict.Fail)]
    [TestCase("v=spf1 ip4:203.0.113.8/29 -all", SpfVerdict.Fail)]
    [TestCase("v=spf1 ip4:198.51.100.1 ~all", SpfVerdict.SoftFail)]
    [TestCase("v=spf1 ip4:198.51.100.1 ?all", SpfVerdict.Neutral)]
    [TestCase("v=spf1 ip4:198.51.100.1", SpfVerdict.Neutral)]
    [TestCase("v=spf1 -ip4:203.0.113.5 +all", SpfVerdict.Fail)]
    [TestCase("v=spf1 ip6:2001:db8::/32 -all", SpfVerdict.Fail)]
    [TestCase("V=SPF1 IP4:203.0.113.5 -ALL", SpfVerdict.Pass)]
    [TestCase("v=spf1 ip4:203.0.113.300 -all", SpfVerdict.PermError)]
    [TestCase("v=spf1 ip4:2001:db8::1 -all", SpfVerdict.PermError)]
    [TestCase("v=spf1 ip4:203.0.113.0/33 -all", SpfVerdict.PermError)]
    [TestCase("v=spf1 frobnicate -all", SpfVerdict.PermError)]
    public async Task Ip4_networks_and_the_all_qualifier_decide(string record, SpfVerdict expected)
    {
        var result = await EvaluateAsync(new FakeTxtLookup().Add("example.test", "some other text", record));

        Assert.That(result.Verdict, Is.EqualTo(expected), result.Detail);
    }

    [TestCase("2001:db8:1::25", SpfVerdict.Pass)]
    [TestCase("2001:db8:2::25", SpfVerdict.Fail)]
    [TestCase("203.0.113.5", SpfVerdict.Fail)]
    public async Task Ip6_networks_match_by_prefix_and_not_across_families(string address, SpfVerdict expected)
    {
        var dns = new FakeTxtLookup().Add("example.test", "v=spf1 ip6:2001:db8:1::/48 ip4:198.51.100.0/24 -all");

        Assert.That((await EvaluateAsync(dns, address)).Verdict, Is.EqualTo(expected));
    }

    [Test]
    public async Task An_include_two_levels_deep_authorises_and_its_qualifier_counts()
    {
        var dns = new FakeTxtLookup()
            .Add("example.test", "v=spf1 include:_spf.provider.test -all")
            .Add("_spf.provider.test", "v=spf1 ip4:198.51.100.0/24 include:_net2.provider.test ~all")
            .Add("_net2.provider.test", "v=spf1 ip4:203.0.113.0/24 -all");

        var result = await EvaluateAsync(dns);

        Assert.That(result.Verdict, Is.EqualTo(SpfVerdict.Pass), result.Detail);
        Assert.That(result.Detail, Does.Contain("include:_spf.provider.test").And.Contain("ip4:203.0.113.0/24"));
    }

    [Test]
    public async Task An_include_that_does_not_match_falls_through_to_all()
    {
        var dns = new FakeTxtLookup()
            .Add("example.test", "v=spf1 include:_spf.provider.test -all")
            .Add("_spf.provider.test", "v=spf1 ip4:198.51.100.0/24 ~all");

        Assert.That((await EvaluateAsync(dns)).Verdict, Is.EqualTo(SpfVerdict.Fail));
    }

    [Test]
    public async Task A_third_level_is_not_followed_and_is_named()
    {
        var dns = new FakeTxtLookup()
            .Add("example.test", "v=spf1 include:one.test -all")
            .Add("one.test", "v=spf1 include:two.test ?all")
            .Add("two.test", "v=spf1 include:three.test ?all")
            .Add("three.test", "v=spf1 ip4:203.0.113.5 -all");

        var result = await EvaluateAsync(dns);

        Assert.That(result.Verdict, Is.EqualTo(SpfVerdict.Fail));
        Assert.That(dns.Asked, Does.Not.Contain("three.test"));
    }

    [Test]
    public async Task Redirect_is_followed_when_no_mechanism_matched()
    {
        var dns = new FakeTxtLookup()
            .Add("example.test", "v=spf1 ip4:198.51.100.1 redirect=_spf.example.test")
            .Add("_spf.example.test", "v=spf1 ip4:203.0.113.5 -all");

        Assert.That((await EvaluateAsync(dns)).Verdict, Is.EqualTo(SpfVerdict.Pass));
        Assert.That((await EvaluateAsync(dns, "192.0.2.1")).Verdict, Is.EqualTo(SpfVerdict.Fail));
    }

    [Test]
    public async Task No_record_two_records_and_an_include_without_record_are_named()
    {
        var none = await EvaluateAsync(new FakeTxtLookup().Add("example.test", "google-site-verification=abc"));
        var two = await EvaluateAsync(new FakeTxtLookup().Add("example.test", "v=spf1 -all", "v=spf1 ip4:203.0.113.5 -all"));
        var missingInclude = await EvaluateAsync(new FakeTxtLookup().Add("example.test", "v=spf1 include:gone.test -all"));

        Assert.Multiple(() =>
        {
            Assert.That(none, Is.EqualTo(new SpfResult(SpfVerdict.None, "no SPF record at example.test")));
            Assert.That(two.Verdict, Is.EqualTo(SpfVerdict.PermError));
            Assert.That(two.Detail, Does.Contain("2 SPF records at example.test"));
            Assert.That(missingInclude.Verdict, Is.EqualTo(SpfVerdict.PermError));
            Assert.That(missingInclude.Detail, Does.Contain("include:gone.test"));
        });
    }

    [Test]
    public async Task A_mechanisms_and_macros_are_not_guessed_at_but_named()
    {
        var dns = new FakeTxtLookup().Add("example.test", "v=spf1 a mx exists:%{i}.spf.example.test -all");

        var result = await EvaluateAsync(dns);

        Assert.That(result.Verdict, Is.EqualTo(SpfVerdict.Fail));
        Assert.That(result.Detail, Does.Contain("not evaluated: a mx exists:%{i}.spf.example.test"));
    }

    [Test]
    public async Task A_dns_failure_is_a_temporary_error_naming_the_lookup()
    {
        var dns = new FakeTxtLookup().Add("example.test", "v=spf1 include:slow.test -all");
        dns.Answers["slow.test"] = TxtAnswer.Failed("timeout");

        Assert.That(await EvaluateAsync(dns), Is.EqualTo(new SpfResult(SpfVerdict.TempError, "dns: timeout (slow.test)")));
    }
}
