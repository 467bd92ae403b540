using System.Diagnostics;
using System.Net;

namespace Interceptor.Smtp.Upstream;

/// <summary>
/// Opens upstream connections through an <see cref="UpstreamDescriptorGate"/>: a slot is taken before connecting and
/// given back exactly once, when the connect fails or when the transport is disposed or aborted (whichever comes
/// first). Reused sessions never come here: the gate costs nothing on the reuse path.
/// </summary>
public sealed class GatedUpstreamConnector(IUpstreamConnector inner, UpstreamDescriptorGate gate) : IUpstreamConnector
{
    private static readonly TimeSpan MinimumConnect = TimeSpan.FromSeconds(1);

    public UpstreamDescriptorGate Gate => gate;

    /// <exception cref="UpstreamDescriptorsExhaustedException">No slot came within <paramref name="timeout"/>.</exception>
    public async Task<IUpstreamTransport> ConnectAsync(IPEndPoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        await gate.EnterAsync(timeout, cancellationToken);
        try
        {
            // One connect timeout for both waits (a slot, then the connect), so a client is answered within it, but never
            // less than MinimumConnect for the connect itself once a slot came late.
            var left = timeout - Stopwatch.GetElapsedTime(started);
            return new GatedTransport(await inner.ConnectAsync(endpoint, left > MinimumConnect ? left : MinimumConnect, cancellationToken), gate);
        }
        catch
        {
            gate.Release();
            throw;
        }
    }

    /// <summary>The transport, holding its slot until it is closed.</summary>
    private sealed class GatedTransport(IUpstreamTransport transport, UpstreamDescriptorGate gate) : IUpstreamTransport
    {
        private int _released;

        public Stream Stream => transport.Stream;

        public bool HasUnaskedInput() => transport.HasUnaskedInput();

        public void Abort()
        {
            try
            {
                transport.Abort();
            }
            finally
            {
                ReleaseOnce();
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await transport.DisposeAsync();
            }
            finally
            {
                ReleaseOnce();
            }
        }

        private void ReleaseOnce()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
