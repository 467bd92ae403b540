using Interceptor.Core.Domains;
using Interceptor.Core.Options;

namespace Interceptor.Tests.Core.Domains;

[TestFixture]
[Parallelizable(ParallelScope.All)]
public class DomainMapTests
{
    private static DomainMap Parse(DomainSource source, string text)
    {
        using var reader = new StringReader(text);
        return DomainMap.Parse(source, reader);
    }

    [Test]
    public void A_cpanel_userdomains_file_maps_each_domain_to_its_user_and_skips_the_catch_all()
    {
        var map = Parse(DomainSource.Cpanel, "example.test: alice\nshop.example.net: bob\n*: nobody\n");

        Assert.That(map.OwnerOf("example.test", includeSubdomains: false), Is.EqualTo("alice"));
        Assert.That(map.OwnerOf("SHOP.example.net.", includeSubdomains: false), Is.EqualTo("bob"));
        Assert.That(map.Malformed, Is.Empty);
        Assert.That(map.ByUser().Keys, Is.EqualTo(new[] { "alice", "bob" }));
    }

    [Test]
    public void An_internationalised_name_matches_its_ascii_form_whichever_form_the_map_or_the_mail_uses()
    {
        var map = Parse(DomainSource.Cpanel, "xn--bcher-kva.example: alice\nmüller.test: bob\nbob.test: bob\n");

        Assert.Multiple(() =>
        {
            Assert.That(map.OwnerOf("bücher.example", includeSubdomains: false), Is.EqualTo("alice"), "a Unicode From: against the panel's A-label");
            Assert.That(map.OwnerOf("BÜCHER.Example.", includeSubdomains: false), Is.EqualTo("alice"));
            Assert.That(map.OwnerOf("shop.bücher.example", includeSubdomains: true), Is.EqualTo("alice"));
            Assert.That(map.OwnerOf("xn--mller-kva.test", includeSubdomains: false), Is.EqualTo("bob"), "a Unicode map line against an A-label");
            Assert.That(map.ByUser()["bob"], Does.Contain("xn--mller-kva.test"));

            // The IDNA dots are dots; a fullwidth letter is a name of its own (invariant globalization: no UTS 46 mapping).
            Assert.That(map.OwnerOf("bob\u3002test", includeSubdomains: false), Is.EqualTo("bob"), "ideographic full stop");
            Assert.That(map.OwnerOf("\uFF42ob.test", includeSubdomains: true), Is.Null, "fullwidth b");

            // No valid IDN: matches nothing, and is no map entry either.
            Assert.That(map.OwnerOf("b\u0000ücher.example", includeSubdomains: false), Is.Null);
            Assert.That(map.Malformed, Is.Empty);
        });
    }

    [Test]
    public void A_unicode_name_longer_than_any_domain_is_kept_as_written_without_being_encoded()
    {
        // A From: of 120,000 CJK characters, 12,000 distinct: .NET's Punycode encoder checks the label's length only after
        // encoding it, in time of length times distinct characters (seconds here; a megabyte, which the header reader
        // allows, half a minute a call). Not a speed target: a bound of two seconds against several.
        var huge = new string(Enumerable.Range(0, 120_000).Select(i => (char)(0x4E00 + (i % 12_000))).ToArray()) + ".example";
        var map = Parse(DomainSource.Cpanel, "bob.test: bob\n");

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var normalised = DomainMap.Normalise(huge);
        var owner = map.OwnerOf(huge, includeSubdomains: true);
        clock.Stop();

        Assert.That(normalised, Is.EqualTo(huge));
        Assert.That(owner, Is.Null);
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "encoded instead of refused by its length");
    }

    [Test]
    public void A_name_longer_than_any_domain_under_an_owned_one_has_no_owner()
    {
        // 10,000 one-letter labels under alice's domain: no domain, and walking its parents copies the name at each label.
        var map = Parse(DomainSource.Cpanel, "example.test: alice\n");
        var deep = string.Concat(Enumerable.Repeat("a.", 10_000)) + "example.test";

        Assert.That(map.OwnerOf(deep, includeSubdomains: true), Is.Null);
        Assert.That(map.OwnerOf("a.b.example.test", includeSubdomains: true), Is.EqualTo("alice"));
    }

    [Test]
    public void A_directadmin_domainowners_file_reads_the_same_form()
    {
        var map = Parse(DomainSource.DirectAdmin, "example.test: alice\nother.test: bob\n");

        Assert.That(map.Owns("bob", "other.test", includeSubdomains: true), Is.True);
        Assert.That(map.Owns("alice", "other.test", includeSubdomains: true), Is.False);
    }

    [Test]
    public void Our_file_lists_a_users_domains_on_one_line()
    {
        var map = Parse(DomainSource.File, "alice: example.test example.org\nbob: bob.test\n");

        Assert.That(map.ByUser()["alice"], Is.EqualTo(new[] { "example.org", "example.test" }));
        Assert.That(map.OwnerOf("bob.test", includeSubdomains: false), Is.EqualTo("bob"));
    }

    [Test]
    public void Subdomains_belong_to_the_owner_of_the_nearest_parent_unless_turned_off()
    {
        var map = Parse(DomainSource.File, "alice: example.test\nbob: shop.example.test\n");

        Assert.That(map.OwnerOf("mail.example.test", includeSubdomains: true), Is.EqualTo("alice"));
        Assert.That(map.OwnerOf("a.shop.example.test", includeSubdomains: true), Is.EqualTo("bob"));
        Assert.That(map.OwnerOf("mail.example.test", includeSubdomains: false), Is.Null);
        Assert.That(map.OwnerOf("notexample.test", includeSubdomains: true), Is.Null);
    }

    [Test]
    public void Malformed_lines_are_named_by_number_and_skipped_and_the_rest_is_read()
    {
        var map = Parse(DomainSource.Cpanel, "example.test: alice\nno colon here\nbad_domain: bob\nx.test: not a user\nfine.test: carol\nexample.test: mallory\n");

        Assert.That(map.Malformed.Select(m => m.Number), Is.EqualTo(new[] { 2, 3, 4, 6 }));
        Assert.That(map.Malformed[3].Problem, Does.Contain("already owned by alice"));
        Assert.That(map.OwnerOf("fine.test", false), Is.EqualTo("carol"));
        Assert.That(map.OwnerOf("example.test", false), Is.EqualTo("alice"), "a later line does not take a domain over");
    }
}
