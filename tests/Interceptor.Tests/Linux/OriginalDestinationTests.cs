using System.Net;
using System.Net.Sockets;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

[TestFixture]
public class OriginalDestinationTests
{
    [TestCase("127.0.0.1")]
    [TestCase("::1")]
    public async Task Plain_accepted_socket_has_no_original_destination(string address)
    {
        var ip = IPAddress.Parse(address);
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            Assume.That(Socket.OSSupportsIPv6, "no IPv6 on this host");
        }

        using var listener = new TcpListener(ip, 0);
        listener.Start();
        using var client = new TcpClient(ip.AddressFamily);
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        using var accepted = await listener.AcceptSocketAsync();

        // As callers must: the stream first, because the failed getsockopt clears Connected.
        await using var stream = new NetworkStream(accepted, ownsSocket: false);

        var destination = OriginalDestination.TryRead(accepted);

        Assert.That(destination, Is.Null);

        // The connection itself is unharmed.
        await stream.WriteAsync(new byte[] { 42 });
        var buffer = new byte[1];
        var read = await client.GetStream().ReadAsync(buffer);
        Assert.That(read, Is.EqualTo(1));
        Assert.That(buffer[0], Is.EqualTo(42));
    }

    [Test]
    public void Decodes_sockaddr_in()
    {
        // AF_INET (host order), port 25 big-endian, 203.0.113.5, zero padding
        byte[] sockaddr = [2, 0, 0, 25, 203, 0, 113, 5, 0, 0, 0, 0, 0, 0, 0, 0];

        Assert.That(OriginalDestination.DecodeSockaddrIn(sockaddr), Is.EqualTo(new IPEndPoint(IPAddress.Parse("203.0.113.5"), 25)));
    }

    [Test]
    public void Decodes_sockaddr_in6()
    {
        var address = IPAddress.Parse("2001:db8::25");
        var sockaddr = new byte[28];
        sockaddr[0] = 10;
        sockaddr[2] = 0x02;
        sockaddr[3] = 0x4B; // 587
        address.GetAddressBytes().CopyTo(sockaddr, 8);

        Assert.That(OriginalDestination.DecodeSockaddrIn6(sockaddr), Is.EqualTo(new IPEndPoint(address, 587)));
    }

    [TestCase("127.0.0.1", 10025, "127.0.0.1", 10025, true)]
    [TestCase("127.0.0.1", 10025, "::ffff:127.0.0.1", 10025, true)]
    [TestCase("::1", 10025, "::1", 10025, true)]
    [TestCase("127.0.0.2", 25, "127.0.0.1", 10025, false)]
    [TestCase("127.0.0.1", 25, "127.0.0.1", 10025, false)]
    [TestCase("2001:db8::25", 25, "::1", 10025, false)]
    public void Own_listener_as_original_destination_means_not_redirected(
        string original, int originalPort, string local, int localPort, bool own)
    {
        // With conntrack active, a direct connection's "original destination" is our listener.
        var result = OriginalDestination.IsOwnEndPoint(
            new IPEndPoint(IPAddress.Parse(original), originalPort),
            new IPEndPoint(IPAddress.Parse(local), localPort));

        Assert.That(result, Is.EqualTo(own));
    }

    [Test]
    public void Short_sockaddr_is_a_fault()
    {
        Assert.Throws<LinuxInteropException>(() => OriginalDestination.DecodeSockaddrIn(new byte[4]));
    }
}
