using System.Net;
using System.Net.Sockets;
using Interceptor.Linux;
using NUnit.Framework;

namespace Interceptor.Tests.Linux;

/// <summary>
/// The listener-ownership check of issue 12.1 against real sockets on loopback port 0: our own listener is ours; a
/// second socket on the same port (an SO_REUSEPORT sibling, same process and uid, but not in the "ours" set) is foreign.
/// </summary>
public class ListeningSocketsTests
{
    // SOL_SOCKET and SO_REUSEPORT on Linux; .NET has no SocketOptionName for it.
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    [Test]
    public void Our_own_listener_is_accepted_and_an_reuseport_sibling_is_reported_with_its_uid_and_inode()
    {
        using var ours = Listen(IPAddress.Loopback, 0, reusePort: true);
        var port = ((IPEndPoint)ours.LocalEndPoint!).Port;
        var ourInode = ListeningSockets.InodeOf(ours);
        var uid = UserDatabase.EffectiveUid;

        Assert.That(ListeningSockets.FindForeign(port, uid, new HashSet<ulong> { ourInode }), Is.Empty, "only our own listener on the port");

        using var sibling = Listen(IPAddress.Loopback, port, reusePort: true);
        var siblingInode = ListeningSockets.InodeOf(sibling);
        var foreign = ListeningSockets.FindForeign(port, uid, new HashSet<ulong> { ourInode });

        Assert.That(foreign, Has.Count.EqualTo(1), string.Join("; ", foreign));
        Assert.Multiple(() =>
        {
            Assert.That(foreign[0].Inode, Is.EqualTo(siblingInode).And.Not.EqualTo(ourInode));
            Assert.That(foreign[0].Uid, Is.EqualTo(uid));
            Assert.That(foreign[0].Local, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, port)));
            Assert.That(ListeningSockets.FindForeign(port, uid, new HashSet<ulong> { ourInode, siblingInode }), Is.Empty, "both ours");
            Assert.That(ListeningSockets.FindForeign(port, uid + 1, new HashSet<ulong> { ourInode, siblingInode }), Has.Count.EqualTo(2), "another uid is never ours");
        });
    }

    [Test]
    public void Ipv6_listeners_are_listed_and_connections_on_the_port_are_not()
    {
        using var v4 = Listen(IPAddress.Loopback, 0, reusePort: false);
        var port = ((IPEndPoint)v4.LocalEndPoint!).Port;
        using var v6 = Listen(IPAddress.IPv6Loopback, port, reusePort: false);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(v4.LocalEndPoint!);
        using var accepted = v4.Accept();

        var listed = ListeningSockets.OnPort(port);

        Assert.That(listed.Select(l => l.Inode), Is.EquivalentTo(new[] { ListeningSockets.InodeOf(v4), ListeningSockets.InodeOf(v6) }),
            "the two listeners, not the established connection: " + string.Join("; ", listed));
        Assert.That(listed.Select(l => l.Local.Address), Is.EquivalentTo(new[] { IPAddress.Loopback, IPAddress.IPv6Loopback }));
    }

    [TestCase("127.0.0.1", true)]
    [TestCase("127.0.0.5", true)]
    [TestCase("0.0.0.0", true)]
    [TestCase("::1", true)]
    [TestCase("::", true)]
    [TestCase("::ffff:127.0.0.1", true)]
    [TestCase("192.0.2.1", false)]
    [TestCase("2001:db8::1", false)]
    public void Only_loopback_and_wildcard_listeners_can_receive_redirected_connections(string address, bool expected)
    {
        var socket = new ListeningSocket(new IPEndPoint(IPAddress.Parse(address), 24), 1002, 1);

        Assert.That(socket.CanReceiveRedirected, Is.EqualTo(expected));
    }

    [Test]
    public void The_unprivileged_port_start_is_read_from_the_sysctl_file()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "1024\n");
            Assert.That(UnprivilegedPorts.Start(path), Is.EqualTo(1024));
            File.WriteAllText(path, "0\n");
            Assert.That(UnprivilegedPorts.Start(path), Is.Zero);
            File.WriteAllText(path, "many\n");
            Assert.That(() => UnprivilegedPorts.Start(path), Throws.InstanceOf<LinuxInteropException>().With.Message.Contains("many"));
            Assert.That(UnprivilegedPorts.Start(path + ".missing"), Is.EqualTo(1024), "kernels without the sysctl: below 1024 is privileged");
            Assert.That(UnprivilegedPorts.Start(), Is.GreaterThanOrEqualTo(0), "this namespace's own value");
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static Socket Listen(IPAddress address, int port, bool reusePort)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            socket.DualMode = false;
        }

        if (reusePort)
        {
            socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
        }

        socket.Bind(new IPEndPoint(address, port));
        socket.Listen(16);
        return socket;
    }
}
