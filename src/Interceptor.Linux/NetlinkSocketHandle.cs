using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Interceptor.Linux;

/// <summary>
/// Owns a raw file descriptor that .NET's Socket cannot represent (AF_NETLINK), so it is closed
/// exactly once even if a lookup races with Dispose.
/// </summary>
internal sealed class NetlinkSocketHandle : SafeHandleMinusOneIsInvalid
{
    public NetlinkSocketHandle()
        : base(ownsHandle: true)
    {
    }

    public NetlinkSocketHandle(int fd)
        : base(ownsHandle: true)
    {
        SetHandle(fd);
    }

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
