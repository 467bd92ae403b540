using System.Net;
using System.Security.Cryptography;
using Interceptor.Core.Options;
using Interceptor.Daemon.Domains;
using Interceptor.Smtp.Identity;

namespace Interceptor.Tests.Daemon.Domains;

[TestFixture]
public sealed class DomainCheckerTests
{
    private const string Domain = "example.test";
    private const string Selector = "default._domainkey.example.test";
    private DirectoryInfo _keys = null!;
    private DkimKey _key = null!;

    private static readonly InterceptorOptions HostOptions = new() { Burn = new BurnOptions { HostAddress = "203.0.113.5" } };

    [SetUp]
    public void MakeKey()
    {
        _keys = Directory.CreateTempSubdirectory("domain-check-");
        Directory.CreateDirectory(Path.Combine(_keys.FullName, Domain));
        using var rsa = RSA.Create(1024);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        File.WriteAllText(Path.Combine(_keys.FullName, Domain, "default.key"), pem);
        _key = DkimKey.Parse(pem);
    }

    [TearDown]
    public void RemoveKeys() => _keys.Delete(recursive: true);

    private DkimKeyStore Keys => new(_keys.FullName, "default", ["rsa-sha256"]);

    private FakeTxtLookup GoodDns() => new FakeTxtLookup()
        .Add(Selector, _key.DnsRecord)
        .Add(Domain, "v=spf1 ip4:203.0.113.0/24 -all")
        .Add("_dmarc." + Domain, "v=DMARC1; p=quarantine; rua=mailto:d@example.test");

    private Task<DomainReport> CheckAsync(FakeTxtLookup dns, InterceptorOptions? options = null, bool keys = true, string domain = Domain) =>
        new DomainChecker(options ?? HostOptions, dns, keys ? Keys : null).CheckAsync(domain, "alice", CancellationToken.None);

    [Test]
    public async Task A_correct_domain_is_ok_in_every_column()
    {
        var report = await CheckAsync(GoodDns());

        Assert.That(report, Is.EqualTo(new DomainReport(
            new CheckOutcome(true, "published at " + Selector),
            new CheckOutcome(true, "authorises 203.0.113.5"),
            new CheckOutcome(true, "p=quarantine"))));
    }

    [Test]
    public async Task A_published_key_split_by_spaces_still_matches_and_another_key_does_not()
    {
        var spaced = GoodDns().Add(Selector, _key.DnsRecord.Insert(_key.DnsRecord.Length - 20, " "));
        using var other = RSA.Create(1024);
        var mismatch = GoodDns().Add(Selector, DkimKey.Parse(other.ExportPkcs8PrivateKeyPem()).DnsRecord);

        Assert.That((await CheckAsync(spaced)).Dkim.Ok, Is.True);
        Assert.That((await CheckAsync(mismatch)).Dkim, Is.EqualTo(new CheckOutcome(false, $"the record at {Selector} does not match the key file (p= differs)")));
    }

    [Test]
    public async Task A_missing_record_a_revoked_key_a_missing_key_file_and_signing_off_are_named()
    {
        var noRecord = GoodDns();
        noRecord.Answers.Remove(Selector);
        var revoked = GoodDns().Add(Selector, "v=DKIM1; k=rsa; p=");
        var other = GoodDns();

        Assert.Multiple(async () =>
        {
            Assert.That((await CheckAsync(noRecord)).Dkim.Detail, Is.EqualTo($"no DKIM record at {Selector}"));
            Assert.That((await CheckAsync(revoked)).Dkim.Detail, Does.Contain("revoked"));
            Assert.That((await CheckAsync(other, domain: "other.test")).Dkim.Detail, Is.EqualTo($"no key file {Path.Combine(_keys.FullName, "other.test", "default.key")}"));
            Assert.That((await CheckAsync(GoodDns(), keys: false)).Dkim, Is.EqualTo(new CheckOutcome(false, "not signed: Dkim.Enabled is false")));
        });
    }

    [Test]
    public async Task Dmarc_absent_or_doubled_is_wrong()
    {
        var absent = GoodDns();
        absent.Answers.Remove("_dmarc." + Domain);
        var doubled = GoodDns().Add("_dmarc." + Domain, "v=DMARC1; p=none", "v=DMARC1; p=reject");

        Assert.That((await CheckAsync(absent)).Dmarc, Is.EqualTo(new CheckOutcome(false, "no DMARC record at _dmarc.example.test")));
        Assert.That((await CheckAsync(doubled)).Dmarc.Detail, Does.StartWith("2 DMARC records"));
    }

    [Test]
    public async Task Spf_not_covering_the_host_names_the_address_and_the_verdict()
    {
        var dns = GoodDns().Add(Domain, "v=spf1 ip4:198.51.100.0/24 ~all");

        var spf = (await CheckAsync(dns)).Spf;

        Assert.That(spf.Ok, Is.False);
        Assert.That(spf.Detail, Does.StartWith("203.0.113.5 not authorised (softfail: "));
    }

    [Test]
    public async Task Without_a_host_address_spf_cannot_be_checked_and_says_so()
    {
        var spf = (await CheckAsync(GoodDns(), new InterceptorOptions())).Spf;

        Assert.That(spf, Is.EqualTo(new CheckOutcome(false, "the host's address cannot be checked: Burn.HostAddress is not set")));
    }

    [Test]
    public void The_senders_follow_each_users_relay_mode()
    {
        var options = new InterceptorOptions
        {
            Burn = new BurnOptions { HostAddress = "203.0.113.5" },
            Relay = new RelayOptions
            {
                Mode = RelayMode.OriginalDestination,
                ModeByUser = new Dictionary<string, RelayMode> { ["pooled"] = RelayMode.Smarthost, ["auto"] = RelayMode.Auto },
                Smarthosts = [new SmarthostOptions { Name = "r1", EgressAddress = "198.51.100.10" }, new SmarthostOptions { Name = "r2", EgressAddress = "198.51.100.20" }],
            },
        };

        static string[] Of(InterceptorOptions o, string user) => [.. DomainChecker.SendersOf(o, user).Addresses.Select(a => a.ToString())];

        Assert.That(Of(options, "alice"), Is.EqualTo(new[] { "203.0.113.5" }));
        Assert.That(Of(options, "pooled"), Is.EqualTo(new[] { "198.51.100.10", "198.51.100.20" }));
        Assert.That(Of(options, "auto"), Is.EqualTo(new[] { "203.0.113.5", "198.51.100.10", "198.51.100.20" }));
    }

    [Test]
    public async Task A_relay_the_record_misses_is_named_when_the_pool_is_used()
    {
        var options = HostOptions with
        {
            Relay = new RelayOptions { Mode = RelayMode.Smarthost, Smarthosts = [new SmarthostOptions { Name = "r1", EgressAddress = "198.51.100.10" }] },
        };

        var spf = (await CheckAsync(GoodDns(), options)).Spf;

        Assert.That(spf.Detail, Does.StartWith("198.51.100.10 not authorised (fail: "));
    }

    [Test]
    public async Task A_silent_domain_is_reported_as_a_timeout_within_the_bound_and_the_others_are_not_held_up()
    {
        var dns = GoodDns();
        dns.Silent.UnionWith(["slow.test", "_dmarc.slow.test"]);
        var checker = new DomainChecker(HostOptions, dns, null) { ReportBound = TimeSpan.FromMilliseconds(300) };
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var reports = await checker.CheckAllAsync([(Domain, "alice"), ("slow.test", "bob")], CancellationToken.None);

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        Assert.That(reports[0].Spf.Ok, Is.True);
        Assert.That(reports[1].Spf.Detail, Does.StartWith("dns: timeout"));
        Assert.That(reports[1].Dmarc.Detail, Does.StartWith("dns: timeout"));
    }

    [Test]
    public async Task A_server_that_never_answers_is_a_timeout_of_the_lookup_itself()
    {
        // A bound UDP socket that never replies: DnsClient's own timeout (3 s, one retry) ends the lookup.
        using var silent = new System.Net.Sockets.UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var lookup = new DnsTxtLookup((IPEndPoint)silent.Client.LocalEndPoint!);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var answer = await lookup.TxtAsync("example.test", CancellationToken.None);

        Assert.That(answer.Error, Is.EqualTo("timeout"));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
    }

    [TestCase("v=DKIM1; k=rsa; p=AB CD", "p", "AB CD")]
    [TestCase("v=DMARC1;p=reject", "P", "reject")]
    [TestCase("v=DMARC1", "p", null)]
    public void Tags_are_read_case_insensitively(string record, string tag, string? expected)
    {
        Assert.That(DomainChecker.Tag(record, tag), Is.EqualTo(expected));
    }
}
