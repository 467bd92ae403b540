using System.Net;
using Interceptor.Core.Decide;

namespace Interceptor.Tests.Core;

public class DestinationPolicyTests
{
    private static readonly IReadOnlySet<IPAddress> HostAddresses = new HashSet<IPAddress> { IPAddress.Parse("192.0.2.10"), IPAddress.Parse("2001:db8::10") };

    private static DestinationPolicy Policy(params string[] permitted) =>
        new(10025, permitted.Select(IPEndPoint.Parse), () => HostAddresses);

    [TestCase("203.0.113.5:25")]
    [TestCase("[2001:db8:1::5]:25")]
    public void A_remote_destination_is_relayed(string destination)
    {
        Assert.That(Policy().Check(IPEndPoint.Parse(destination)), Is.Null);
    }

    [TestCase("127.0.0.1:10025")]
    [TestCase("[::1]:10025")]
    public void A_connection_to_our_own_listener_is_refused(string destination)
    {
        var reply = Policy("127.0.0.1:10025").Check(IPEndPoint.Parse(destination));

        Assert.That(reply!.Code, Is.EqualTo(421));
        Assert.That(reply.EnhancedCode, Is.EqualTo("4.3.0"));
    }

    [TestCase("127.0.0.1:25")]
    [TestCase("127.0.0.3:25")]
    [TestCase("192.0.2.10:25")]
    [TestCase("[2001:db8::10]:25")]
    [TestCase("[::1]:25")]
    public void A_local_destination_is_refused_unless_permitted(string destination)
    {
        var endpoint = IPEndPoint.Parse(destination);

        Assert.That(Policy().Check(endpoint)!.Code, Is.EqualTo(421));
        Assert.That(Policy(destination).Check(endpoint), Is.Null);
    }

    [Test]
    public void A_permitted_local_address_is_permitted_on_its_port_only()
    {
        Assert.That(Policy("127.0.0.2:25").Check(IPEndPoint.Parse("127.0.0.2:2525")), Is.Not.Null);
    }
}
