using Interceptor.Core.Pool;
using Interceptor.Core.Replies;
using Interceptor.Smtp.Upstream;

namespace Interceptor.Smtp.Pool;

/// <summary>
/// Hands every upstream reply of a transaction to the pool's burn detection (<see cref="RelayPool.RecordReply"/>): on a
/// relay session under the relay's name, with the relay's counters (a 2xx to the end of data carried a message, a
/// refusal is a failure); on a direct session in Auto mode under <see cref="RelayPool.HostKey"/>, so the same patterns
/// and threshold burn the host's own address.
/// </summary>
internal sealed class PoolReplyWatcher : IUpstreamReplyWatcher
{
    private readonly RelayPool _pool;
    private readonly IRelayPoolObserver _observer;
    private readonly bool _host;
    private readonly uint _sender;

    private PoolReplyWatcher(RelayPool pool, IRelayPoolObserver observer, bool host, uint sender)
    {
        _pool = pool;
        _observer = observer;
        _host = host;
        _sender = sender;
    }

    /// <summary>
    /// For one user's sessions to pool relays (each session's <see cref="UpstreamConnection.Relay"/>): the replies count
    /// towards burning the relay as drawn by <paramref name="senderUid"/>'s mail (the owner's uid), see
    /// <c>Burn.RelayMinUsers</c>.
    /// </summary>
    public static PoolReplyWatcher ForRelays(RelayPool pool, IRelayPoolObserver observer, uint senderUid) => new(pool, observer, host: false, senderUid);

    /// <summary>
    /// For one user's direct sessions in Auto mode: the replies count towards burning the host as drawn by
    /// <paramref name="senderUid"/>'s mail (the owner's uid: sub-UIDs are their owner), see <c>Burn.HostMinUsers</c>.
    /// </summary>
    public static PoolReplyWatcher ForHost(RelayPool pool, IRelayPoolObserver observer, uint senderUid) => new(pool, observer, host: true, senderUid);

    public void Replied(UpstreamConnection connection, UpstreamStep command, SmtpReply reply)
    {
        var key = _host ? RelayPool.HostKey : connection.Relay;
        if (key is null)
        {
            return;
        }

        // A block notice refuses: a positive reply is never one, whatever its text quotes (a sendmail-style
        // "250 <S3150@…>... Sender ok" of her address).
        if (!reply.IsPositive)
        {
            var source = new BurnSource(_sender, _host ? BurnSource.NetworkOf(connection.Endpoint.Address) : "");
            _observer.Publish(_pool.RecordReply(key, WireLines(reply), source, connection.Envelope));
        }

        if (_host)
        {
            return;
        }

        if (!reply.IsPositive)
        {
            _observer.Failed(key, $"{command}: {reply}");
        }
        else if (command == UpstreamStep.EndOfData)
        {
            _observer.Carried(key);
        }
    }

    // The reply's lines as received, codes and all, up to what the classifier reads: an MX's 200 lines of 4 KB are not
    // copied whole for each refusal.
    private static List<string> WireLines(SmtpReply reply)
    {
        var lines = new List<string>();
        var chars = 0;
        for (var i = 0; i < reply.Lines.Count && chars < 2 * BurnClassifier.MaxReplyChars; i++)
        {
            var separator = i == reply.Lines.Count - 1 ? ' ' : '-';
            var line = reply.EnhancedCode is null ? $"{reply.Code}{separator}{reply.Lines[i]}" : $"{reply.Code}{separator}{reply.EnhancedCode} {reply.Lines[i]}";
            lines.Add(line);
            chars += line.Length;
        }

        return lines;
    }
}
