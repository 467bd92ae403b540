using System.Net;
using System.Net.Sockets;

namespace Interceptor.Tests.Linux;

/// <summary>Plain TCP sockets for the socket-table tests: a listener, a connected client, and a send that reports what the kernel said.</summary>
internal static class LoopbackSockets
{
    public static Socket Listening(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(endpoint);
        socket.Listen();
        return socket;
    }

    public static Socket Connected(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(endpoint);
        return socket;
    }

    /// <summary>
    /// Sends <paramref name="text"/> twice, 100 ms apart: a socket reset or aborted fails at once, one whose reset is on its
    /// way at the second send. Success when both went out.
    /// </summary>
    public static SocketError SendTwice(Socket socket, string text)
    {
        try
        {
            socket.Send(System.Text.Encoding.ASCII.GetBytes(text));
            Thread.Sleep(100);
            socket.Send(System.Text.Encoding.ASCII.GetBytes(text));
            return SocketError.Success;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode;
        }
    }
}
