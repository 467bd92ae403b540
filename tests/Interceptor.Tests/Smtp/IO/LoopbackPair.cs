using System.Net;
using System.Net.Sockets;

namespace Interceptor.Tests.Smtp.IO;

/// <summary>A connected loopback TCP pair: the reader reads the server side, the test writes on the client side.</summary>
internal sealed class LoopbackPair : IDisposable
{
    private LoopbackPair(NetworkStream client, NetworkStream server)
    {
        Client = client;
        Server = server;
    }

    public NetworkStream Client { get; }

    public NetworkStream Server { get; }

    public static async Task<LoopbackPair> OpenAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        return new LoopbackPair(new NetworkStream(client, ownsSocket: true), new NetworkStream(server, ownsSocket: true));
    }

    public void Dispose()
    {
        Client.Dispose();
        Server.Dispose();
    }
}
