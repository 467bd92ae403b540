using System.Text.Json;
using Interceptor.Core.Domains;
using Interceptor.Core.Options;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Control;
using Interceptor.Daemon.Domains;
using Interceptor.Tests.Daemon.Domains;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>The `domains` verb on a fixed map with fake DNS, and its table.</summary>
[TestFixture]
public sealed class DomainsAdminTests
{
    private static readonly InterceptorOptions Options = new()
    {
        Domains = new DomainsOptions { Source = DomainSource.File, File = "/nonexistent" },
        Burn = new BurnOptions { HostAddress = "203.0.113.5" },
    };

    private static FixedDomainMap Map() =>
        new FixedDomainMap(DomainMap.Parse(DomainSource.File, new StringReader("alice: example.test shop.test\nbob: bob.test\n")));

    private static async Task<DomainsData> RunAsync(ControlRequest request, FakeTxtLookup? dns = null, IDomainMapSource? map = null)
    {
        await using var fixture = new AdminFixture(Options);
        var admin = new DomainsAdmin(fixture.Context with { DomainMap = map ?? Map() }, AdminFixture.Resolve) { Lookup = () => dns ?? new FakeTxtLookup() };
        return await admin.HandleAsync(request, CancellationToken.None);
    }

    [Test]
    public async Task Without_check_every_users_domains_are_listed_and_nothing_is_looked_up()
    {
        var dns = new FakeTxtLookup();

        var data = await RunAsync(new ControlRequest { Verb = ControlVerbs.Domains }, dns);

        Assert.That(data.Domains.Select(d => $"{d.Domain}:{d.User}"), Is.EqualTo(new[] { "bob.test:bob", "example.test:alice", "shop.test:alice" }));
        Assert.That(data.Checked, Is.False);
        Assert.That(data.Domains.All(d => d.Dkim is null && d.Spf is null && d.Dmarc is null));
        Assert.That(dns.Asked, Is.Empty);
    }

    [TestCase("bob")]
    [TestCase("1002")]
    public async Task User_filters_by_name_or_uid(string user)
    {
        var data = await RunAsync(new ControlRequest { Verb = ControlVerbs.Domains, User = user });

        Assert.That(data.User, Is.EqualTo("bob"));
        Assert.That(data.Domains.Select(d => d.Domain), Is.EqualTo(new[] { "bob.test" }));
    }

    [Test]
    public async Task Check_reports_each_domain_and_the_table_names_what_is_wrong()
    {
        var dns = new FakeTxtLookup()
            .Add("bob.test", "v=spf1 ip4:203.0.113.5 -all").Add("_dmarc.bob.test", "v=DMARC1; p=reject")
            .Add("example.test", "v=spf1 ip4:198.51.100.1 -all");

        var data = await RunAsync(new ControlRequest { Verb = ControlVerbs.Domains, Check = true }, dns);
        var json = JsonSerializer.SerializeToElement(data, ControlJson.Options);
        var text = AdminCommands.Render(ControlVerbs.Domains, json);

        var bob = data.Domains.Single(d => d.Domain == "bob.test");
        Assert.That(bob.Spf, Is.EqualTo(new CheckOutcome(true, "authorises 203.0.113.5")));
        Assert.That(bob.Dmarc!.Ok, Is.True);
        Assert.That(json.GetProperty("domains")[1].GetProperty("spf").GetProperty("ok").GetBoolean(), Is.False);
        var lines = text.Split(Environment.NewLine);
        Assert.That(lines[0], Is.EqualTo("3 domains (Domains.Source File), 3 with problems:"));
        Assert.That(lines[1], Does.Match("^DOMAIN +USER +DKIM +SPF +DMARC$"));
        Assert.That(lines.Single(l => l.StartsWith("bob.test", StringComparison.Ordinal)), Does.Match(@"^bob\.test +bob +not signed: Dkim\.Enabled is false +OK +OK$"));
        Assert.That(lines.Single(l => l.StartsWith("example.test", StringComparison.Ordinal)),
            Does.Contain("203.0.113.5 not authorised (fail: ").And.EndWith("no DMARC record at _dmarc.example.test"));
        Assert.That(lines.Single(l => l.StartsWith("shop.test", StringComparison.Ordinal)), Does.Contain("no SPF record at shop.test"));
    }

    [Test]
    public void No_map_and_no_domains_of_a_user_are_said_in_words()
    {
        Assert.That(DomainsRendering.Domains(new DomainsData("None", null, false, [])), Does.StartWith("no domains: Domains.Source is None"));
        Assert.That(DomainsRendering.Domains(new DomainsData("File", "carol", true, [])), Does.StartWith("no domains of carol in the domain map"));
    }

    [Test]
    public void The_unchecked_table_has_two_columns()
    {
        var text = DomainsRendering.Domains(new DomainsData("Cpanel", "alice", false, [new DomainEntry("example.test", "alice", null, null, null)]));

        Assert.That(text, Is.EqualTo($"1 domain of alice (Domains.Source Cpanel):{Environment.NewLine}DOMAIN        USER{Environment.NewLine}example.test  alice{Environment.NewLine}"));
    }
}
