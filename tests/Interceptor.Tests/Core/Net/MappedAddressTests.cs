using System.Net;
using Interceptor.Core.Net;

namespace Interceptor.Tests.Core.Net;

public class MappedAddressTests
{
    [TestCase("::ffff:192.0.2.7", "192.0.2.7")]
    [TestCase("192.0.2.7", "192.0.2.7")]
    [TestCase("2001:db8::7", "2001:db8::7")]
    [TestCase("::1", "::1")]
    public void An_IPv4_mapped_address_becomes_IPv4_and_others_stay(string given, string expected)
    {
        Assert.That(MappedAddress.Unmap(IPAddress.Parse(given)), Is.EqualTo(IPAddress.Parse(expected)));
        Assert.That(MappedAddress.Unmap(new IPEndPoint(IPAddress.Parse(given), 25)), Is.EqualTo(new IPEndPoint(IPAddress.Parse(expected), 25)));
    }
}
