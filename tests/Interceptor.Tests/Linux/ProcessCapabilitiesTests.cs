using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public class ProcessCapabilitiesTests
{
    [Test]
    public void The_effective_set_is_read_from_the_status_line()
    {
        const string unit = "Name:\tsmtp-interceptor\nCapInh:\t0000000000000000\nCapPrm:\t0000000000001400\nCapEff:\t0000000000001400\n";
        const string shell = "Name:\tbash\nCapEff:\t0000000000000000\n";

        Assert.That(ProcessCapabilities.HasEffective(ProcessCapabilities.NetAdmin, unit), Is.True, "CAP_NET_ADMIN and CAP_NET_BIND_SERVICE");
        Assert.That(ProcessCapabilities.HasEffective(ProcessCapabilities.NetAdmin, shell), Is.False);
        Assert.That(ProcessCapabilities.HasEffective(ProcessCapabilities.NetAdmin, "garbage"), Is.False);
        Assert.That(ProcessCapabilities.HasEffective(ProcessCapabilities.NetAdmin), Is.True, "the tests run as root with every capability");
    }
}
