namespace Interceptor.Smtp.Upstream;

/// <summary>
/// The upstream failed as a network peer (not as an SMTP server: its refusals are reply values).
/// Every subclass says what the caller does next; the client always gets a 4xx, never a 250.
/// </summary>
public abstract class UpstreamException : Exception
{
    protected UpstreamException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>No session could be opened (refused, unreachable, connect timeout). Retry later.</summary>
public class UpstreamUnavailableException(string message, Exception? inner = null)
    : UpstreamException(message, inner);

/// <summary>
/// No session could be opened because the daemon has no descriptor free for another upstream connection
/// (<see cref="UpstreamDescriptorGate"/>): our shortage, not the upstream's fault, so a relay pool must not count it
/// against the relay.
/// </summary>
public sealed class UpstreamDescriptorsExhaustedException(string message)
    : UpstreamUnavailableException(message);

/// <summary>The session was open and the upstream closed it or the network broke. Reconnect for the next transaction.</summary>
public sealed class UpstreamConnectionLostException(string message, Exception? inner = null)
    : UpstreamException(message, inner);

/// <summary>The upstream did not answer within the configured time. The session is abandoned.</summary>
public sealed class UpstreamTimeoutException(string message)
    : UpstreamException(message);

/// <summary>The upstream sent something that is not an SMTP reply. The session is abandoned.</summary>
public sealed class UpstreamProtocolException(string message)
    : UpstreamException(message);
