using System.Net;
using System.Net.Sockets;

namespace Interceptor.Tests.TestDoubles;

/// <summary>Two connected ends of one loopback TCP connection, for tests that run a protocol (a TLS handshake) over it.</summary>
internal sealed class LoopbackTcpPair : IDisposable
{
    private LoopbackTcpPair(TcpClient client, TcpClient server)
    {
        Client = client;
        Server = server;
    }

    public TcpClient Client { get; }

    public TcpClient Server { get; }

    public static async Task<LoopbackTcpPair> ConnectAsync()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new TcpClient();
        try
        {
            var connect = client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
            var server = await listener.AcceptTcpClientAsync();
            await connect;
            return new LoopbackTcpPair(client, server);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        Server.Dispose();
    }
}
