namespace Interceptor.Linux;

/// <summary>
/// The generation of the nftables ruleset in the network namespace this was opened in: a number the kernel moves with
/// every committed transaction (any table, any tool), read with one netlink request (NFT_MSG_GETGEN) instead of
/// listing the ruleset with <c>nft</c>. While it has not moved, nothing in the ruleset has changed. Thread-safe.
/// </summary>
public sealed class NftablesGeneration : IDisposable
{
    private const int NetlinkNetfilter = 12;

    private readonly Lock _gate = new();
    private readonly NetlinkChannel _channel;
    private readonly byte[] _receiveBuffer = new byte[1024];
    private uint _sequence;

    private NftablesGeneration(NetlinkChannel channel)
    {
        _channel = channel;
    }

    /// <summary>Opens a NETLINK_NETFILTER socket in the calling thread's network namespace.</summary>
    /// <exception cref="LinuxInteropException">The socket could not be opened.</exception>
    public static NftablesGeneration Open() =>
        new(NetlinkChannel.Open(NetlinkNetfilter, "NETLINK_NETFILTER", TimeSpan.FromSeconds(1)));

    /// <summary>The ruleset's generation now.</summary>
    /// <exception cref="LinuxInteropException">The kernel refused the request, did not answer within a second, or answered something unreadable.</exception>
    public uint Read()
    {
        lock (_gate)
        {
            var sequence = ++_sequence;
            Span<byte> request = stackalloc byte[NftablesMessage.GenerationRequestLength];
            _channel.Send(request[..NftablesMessage.EncodeGetGeneration(request, sequence)]);
            while (true)
            {
                var received = _channel.Receive(_receiveBuffer);
                switch (NftablesMessage.TryDecodeGeneration(_receiveBuffer.AsSpan(0, received), sequence, out var generation, out var errno))
                {
                    case NetlinkFrameKind.Payload:
                        return generation;
                    case NetlinkFrameKind.OtherSequence:
                        // The late answer to a request that timed out; ours is queued behind it.
                        continue;
                    case NetlinkFrameKind.Error:
                    case NetlinkFrameKind.NotFound:
                        throw new LinuxInteropException("nf_tables NFT_MSG_GETGEN", errno);
                    default:
                        throw new LinuxInteropException($"nf_tables NFT_MSG_GETGEN: an unreadable answer ({received} bytes)");
                }
            }
        }
    }

    public void Dispose() => _channel.Dispose();
}
