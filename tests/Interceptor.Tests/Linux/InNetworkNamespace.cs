using Interceptor.Linux;
using Interceptor.Tests.Netfilter;
using Tmds.Linux;

namespace Interceptor.Tests.Linux;

/// <summary>
/// Opens something (a netlink socket) inside a test's namespace: a socket belongs to the namespace it was opened in,
/// whichever thread reads it later. The opening runs on a thread of its own moved there, which then ends; no other
/// thread of the test run changes namespace.
/// </summary>
internal static class InNetworkNamespace
{
    private const int CloneNewNet = 0x40000000;

    public static T Open<T>(TestNamespace ns, Func<T> open) => OnThreadOfItsOwn.Run($"moved to {ns.Name}", () =>
    {
        using var handle = File.OpenHandle($"/run/netns/{ns.Name}");
        if (LibC.setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
        {
            throw new LinuxInteropException("setns", System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
        }
    }, open);
}
