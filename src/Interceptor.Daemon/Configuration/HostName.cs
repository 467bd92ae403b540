using System.Net;
using System.Net.Sockets;

namespace Interceptor.Daemon.Configuration;

/// <summary>This host's name for an unset <c>Relay.HeloName</c>: its canonical name when DNS knows it, else the kernel's.</summary>
public static class HostName
{
    public static string Resolve()
    {
        try
        {
            return Dns.GetHostEntry(Dns.GetHostName()).HostName;
        }
        catch (SocketException)
        {
            return Dns.GetHostName();
        }
    }
}
