namespace Interceptor.Core.Pool;

/// <summary>
/// What the relay path tells the pool's owner (the daemon), which persists, logs, alerts and counts. The relay path
/// (Interceptor.Smtp) changes <see cref="RelayPool"/> and hands every <see cref="PoolUpdate"/> here; it does no I/O of
/// its own about the pool. Implementations must not throw and must not block the session (queue slow work).
/// </summary>
public interface IRelayPoolObserver
{
    /// <summary>A pool operation's result: persist <see cref="PoolUpdate.Changed"/>, log and alert its events.</summary>
    void Publish(PoolUpdate update);

    /// <summary>
    /// A relay refused a site's login (535): the site's problem, not the relay's. The relay stays up; the admin is
    /// alerted naming the user. <paramref name="reply"/> is the relay's reply text (never the credentials).
    /// </summary>
    void LoginRefused(string relay, string user, string reply);

    /// <summary>A relay accepted a message (its reply to the final dot was 2xx): the per-relay counters.</summary>
    void Carried(string relay);

    /// <summary>A relay failed a message after it was chosen (connection, greeting, TLS, AUTH 454, a 4xx/5xx to a command).</summary>
    void Failed(string relay, string reason);
}

/// <summary>Does nothing: for unit tests and for a daemon whose relay mode never uses the pool.</summary>
public sealed class NullRelayPoolObserver : IRelayPoolObserver
{
    public static readonly NullRelayPoolObserver Instance = new();

    public void Publish(PoolUpdate update)
    {
    }

    public void LoginRefused(string relay, string user, string reply)
    {
    }

    public void Carried(string relay)
    {
    }

    public void Failed(string relay, string reason)
    {
    }
}
