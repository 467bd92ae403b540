using System.Net;
using Interceptor.Core.Pool;

namespace Interceptor.Tests.Core.Pool;

public class DnsblAnswerTests
{
    [TestCase("127.0.0.2", DnsblVerdict.Listed)]
    [TestCase("127.0.0.4", DnsblVerdict.Listed)]
    [TestCase("127.0.0.11", DnsblVerdict.Listed)]
    [TestCase("127.0.0.255", DnsblVerdict.Listed)]
    [TestCase("127.255.255.252", DnsblVerdict.ResolverError)]
    [TestCase("127.255.255.254", DnsblVerdict.ResolverError)]
    [TestCase("127.255.255.255", DnsblVerdict.ResolverError)]
    [TestCase("127.0.0.1", DnsblVerdict.ResolverError)]
    [TestCase("198.51.100.7", DnsblVerdict.ResolverError)]
    public void Answers_in_127_0_0_2_to_255_are_listings_and_127_255_255_x_never(string answer, DnsblVerdict expected)
    {
        Assert.That(DnsblAnswer.Classify(IPAddress.Parse(answer)), Is.EqualTo(expected));
    }

    [Test]
    public void No_answer_is_not_listed_and_a_listing_beside_an_error_still_lists()
    {
        Assert.That(DnsblAnswer.Classify([]), Is.EqualTo(DnsblVerdict.NotListed));
        Assert.That(DnsblAnswer.Classify([IPAddress.Parse("127.255.255.254"), IPAddress.Parse("127.0.0.2")]), Is.EqualTo(DnsblVerdict.Listed));
    }

    [Test]
    public void Query_names_reverse_the_octets_or_the_nibbles()
    {
        Assert.That(DnsblAnswer.QueryName(IPAddress.Parse("192.0.2.99"), "zen.spamhaus.org"), Is.EqualTo("99.2.0.192.zen.spamhaus.org"));
        Assert.That(DnsblAnswer.QueryName(IPAddress.Parse("::ffff:192.0.2.99"), "zen.spamhaus.org."), Is.EqualTo("99.2.0.192.zen.spamhaus.org"));
        Assert.That(DnsblAnswer.QueryName(IPAddress.Parse("2001:db8::1"), "zen.spamhaus.org"),
            Is.EqualTo("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"));
    }
}
