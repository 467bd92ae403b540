using System.Net;
using System.Net.Sockets;
using Interceptor.Linux;
using NUnit.Framework;

namespace Interceptor.Tests.Linux;

/// <summary>
/// The sock_diag dump of a port's sockets and SOCK_DESTROY (PortSockets.cs), against real sockets on loopback: a dump keeps
/// what its filter chooses, up to its limit a family, and says when it dropped some; a destroy names a socket by its
/// cookie, never another on the same ends.
/// </summary>
[NonParallelizable]
public class PortSocketsTests
{
    [Test]
    public void A_socket_gone_since_the_dump_is_not_mistaken_for_another_on_the_same_ends()
    {
        using var server = LoopbackSockets.Listening(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)server.LocalEndPoint!).Port;
        using var client = LoopbackSockets.Connected((IPEndPoint)server.LocalEndPoint!);
        using var accepted = server.Accept();
        var listed = PortSockets.OnPort(port, PortSockets.AllButTimeWait);
        var connection = listed.Single(s => s.State == TcpState.Established);

        var stale = connection with { Cookie = connection.Cookie + 1 };

        Assert.Multiple(() =>
        {
            Assert.That(listed.Select(s => s.State), Is.EquivalentTo(new[] { TcpState.Listen, TcpState.Established }), string.Join("; ", listed));
            Assert.That(connection.Inode, Is.EqualTo(ListeningSockets.InodeOf(accepted)));
            Assert.That(PortSockets.Destroy([stale])[0], Is.Not.Zero, "another cookie names no socket");
            Assert.That(LoopbackSockets.SendTwice(client, "still"), Is.EqualTo(SocketError.Success), "the connection is untouched");
            Assert.That(PortSockets.Destroy([connection with { State = TcpState.Listen }])[0], Is.Zero, "the cookie, not the state, names it");
            Assert.That(LoopbackSockets.SendTwice(client, "gone"), Is.EqualTo(SocketError.ConnectionReset));
        });
    }

    [Test]
    public void A_dump_keeps_what_its_filter_chooses_up_to_its_limit_in_each_family_and_says_when_it_dropped_some()
    {
        using var v4 = LoopbackSockets.Listening(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)v4.LocalEndPoint!).Port;
        using var v6 = LoopbackSockets.Listening(new IPEndPoint(IPAddress.IPv6Loopback, port));
        var clients = new List<Socket>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                clients.Add(LoopbackSockets.Connected((IPEndPoint)v4.LocalEndPoint!));
                clients.Add(LoopbackSockets.Connected((IPEndPoint)v6.LocalEndPoint!));
            }

            var connections = PortSockets.OnPort(port, PortSockets.AllButTimeWait, s => s.State != TcpState.Listen, 2, out var truncated);
            var all = PortSockets.OnPort(port, PortSockets.AllButTimeWait, s => s.State != TcpState.Listen, 100, out var complete);
            var clientsOfIt = PortSockets.ToPort(port, PortSockets.AllButTimeWait, _ => true, 100, out _);

            Assert.Multiple(() =>
            {
                Assert.That(connections.Select(c => c.Family), Is.EqualTo(new[] { AddressFamily.InterNetwork, AddressFamily.InterNetwork, AddressFamily.InterNetworkV6, AddressFamily.InterNetworkV6 }), "two a family, the IPv6 ones not crowded out");
                Assert.That(truncated, Is.True);
                Assert.That(all, Has.Count.EqualTo(6).And.All.Matches<PortSocket>(s => s.State == TcpState.Established && s.Local.Port == port), "the accepted ends, no listener");
                Assert.That(complete, Is.False);
                Assert.That(clientsOfIt.Select(c => c.Local.Port), Is.EquivalentTo(clients.Select(c => ((IPEndPoint)c.LocalEndPoint!).Port)), "the clients' ends: their remote port is the port");
            });
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }
}
