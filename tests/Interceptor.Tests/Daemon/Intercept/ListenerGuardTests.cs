using Interceptor.Daemon.Intercept;
using Interceptor.Linux;
using NUnit.Framework;

namespace Interceptor.Tests.Daemon.Intercept;

public class ListenerGuardTests
{
    [Test]
    public void A_port_below_the_sysctl_is_safe()
    {
        Assert.That(ListenerGuard.UnprivilegedPortProblem(24, () => 1024), Is.Null);
        Assert.That(ListenerGuard.UnprivilegedPortProblem(10025, () => 10026), Is.Null, "a raised sysctl makes 10025 privileged");
    }

    [TestCase(10025, 1024)]
    [TestCase(24, 0)]
    [TestCase(1024, 1024)]
    public void A_port_any_user_may_bind_is_refused_naming_the_sysctl_and_both_numbers(int port, int start)
    {
        var problem = ListenerGuard.UnprivilegedPortProblem(port, () => start);

        Assert.That(problem, Does.Contain(UnprivilegedPorts.SysctlName).And.Contain($"Listen.Port {port} ").And.Contain($" is {start} "));
    }

    [Test]
    public void An_unreadable_sysctl_counts_as_unsafe()
    {
        var problem = ListenerGuard.UnprivilegedPortProblem(24, () => throw new LinuxInteropException("cannot read it"));

        Assert.That(problem, Does.Contain("cannot be shown to be privileged").And.Contain("cannot read it"));
    }
}
