using System.Net;
using System.Net.Sockets;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

/// <summary>TCP_INFO's state read from real loopback connections, as the kernel moves them.</summary>
[TestFixture]
public sealed class TcpConnectionStateTests
{
    [Test]
    public void An_accepted_connection_is_established_then_close_wait_after_the_peers_fin_and_close_after_its_reset()
    {
        using var listener = LoopbackSockets.Listening(new IPEndPoint(IPAddress.Loopback, 0));
        var endpoint = (IPEndPoint)listener.LocalEndPoint!;

        using var finishing = LoopbackSockets.Connected(endpoint);
        using var finished = listener.Accept();
        using var resetting = LoopbackSockets.Connected(endpoint);
        using var reset = listener.Accept();
        var established = TcpConnectionState.Of(finished);

        finishing.Shutdown(SocketShutdown.Send);
        resetting.LingerState = new LingerOption(true, 0); // close() sends RST, as a client aborting does
        resetting.Close();
        var halfClosed = WaitFor(finished, TcpState.CloseWait);
        var gone = WaitFor(reset, TcpState.Close);

        Assert.Multiple(() =>
        {
            Assert.That(established, Is.EqualTo(TcpState.Established));
            Assert.That(halfClosed, Is.EqualTo(TcpState.CloseWait));
            Assert.That(gone, Is.EqualTo(TcpState.Close));
            Assert.That(TcpConnectionState.PeerStillThere(established), Is.True);
            Assert.That(TcpConnectionState.PeerStillThere(halfClosed), Is.True, "a client that sent its FIN may still read the replies");
            Assert.That(TcpConnectionState.PeerStillThere(gone), Is.False);
        });
    }

    [Test]
    public void A_connection_reset_while_in_the_accept_queue_is_accepted_in_close()
    {
        using var listener = LoopbackSockets.Listening(new IPEndPoint(IPAddress.Loopback, 0));
        using (var client = LoopbackSockets.Connected((IPEndPoint)listener.LocalEndPoint!))
        {
            client.LingerState = new LingerOption(true, 0);
        }

        // What the daemon meets when its accept loop was behind: the kernel hands the dead connection out all the same.
        Thread.Sleep(100);
        using var accepted = listener.Accept();

        Assert.That(TcpConnectionState.Of(accepted), Is.EqualTo(TcpState.Close));
    }

    [Test]
    public void A_fast_open_child_before_its_last_ack_still_holds_its_tuple_and_closing_states_do_not_count_as_a_peer() =>
        Assert.That(Enum.GetValues<TcpState>().Where(TcpConnectionState.PeerStillThere),
            Is.EquivalentTo(new[] { TcpState.Established, TcpState.CloseWait, TcpState.SynReceived }));

    [Test]
    public void A_socket_that_is_not_tcp_is_a_clear_error()
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));

        Assert.That(() => TcpConnectionState.Of(udp), Throws.TypeOf<LinuxInteropException>().With.Message.Contains("TCP_INFO"));
    }

    private static TcpState WaitFor(Socket socket, TcpState wanted)
    {
        var state = TcpConnectionState.Of(socket);
        for (var i = 0; i < 100 && state != wanted; i++)
        {
            Thread.Sleep(10);
            state = TcpConnectionState.Of(socket);
        }

        return state;
    }
}
